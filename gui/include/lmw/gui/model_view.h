#pragma once
// The Models view: open a model folder (or a recent one), read its model card, plan its memory,
// pick engine settings, and load / cancel / unload.
#include <QWidget>
#include <optional>

#include "lmw/gui/engine_settings.h"
#include "lmw/gui/memory_planner.h"
#include "lmw/model_info.h"

class QBoxLayout;
class QComboBox;
class QDoubleSpinBox;
class QFormLayout;
class QLabel;
class QListWidget;
class QProgressBar;
class QPushButton;
class QScrollArea;
class QSpinBox;

namespace lmw::gui {

class EngineController;
class MemoryBar;

class ModelView : public QWidget {
    Q_OBJECT
public:
    explicit ModelView(EngineController* engine, QWidget* parent = nullptr);

    // Reads the model card off the GUI thread; modelInfoReady or errorOccurred follows.
    void openModel(const QString& dir);
    // Opens the folder and loads it as soon as its card is read.
    void openAndLoad(const QString& dir);
    void loadCurrent();
    QString currentDir() const { return m_dir; }
    const std::optional<lmw::engine::ModelInfo>& currentInfo() const { return m_info; }
    EngineSettings settings() const;
    void setSettings(const EngineSettings& s);  // updates the controls (and saves)
    MemoryPlan currentPlan() const { return m_plan; }
    QString warningText() const;
    // The devices the planner offers (probed at start; tests and screenshots may set their own).
    void setDevices(const QList<DeviceMemory>& devices);

public slots:
    void chooseFolder();

protected:
    void resizeEvent(QResizeEvent* e) override;

signals:
    void modelInfoReady(const QString& dir);
    void errorOccurred(const QString& title, const QString& message);

private:
    void buildUi();
    void showInfo();
    void updatePlan();
    void updateButtons();
    void refreshRecent();
    void settingsChanged();
    void fitCardRow();

    EngineController* m_engine;
    QString m_dir;
    std::optional<lmw::engine::ModelInfo> m_info;
    QList<DeviceMemory> m_devices;
    MemoryPlan m_plan;
    bool m_loadWhenRead = false;
    bool m_updating = false;

    QListWidget* m_recent = nullptr;
    QLabel* m_title = nullptr;
    QLabel* m_path = nullptr;
    QFormLayout* m_card = nullptr;
    QScrollArea* m_scroll = nullptr;
    QBoxLayout* m_cardRow = nullptr;  // the model card beside the engine settings, or above them when narrow
    QComboBox* m_backend = nullptr;
    QComboBox* m_kv = nullptr;
    QDoubleSpinBox* m_cacheFraction = nullptr;
    QSpinBox* m_sessionLen = nullptr;
    QSpinBox* m_maxBatch = nullptr;
    QComboBox* m_device = nullptr;
    MemoryBar* m_bar = nullptr;
    QLabel* m_planText = nullptr;
    QLabel* m_warning = nullptr;
    QPushButton* m_load = nullptr;
    QPushButton* m_cancel = nullptr;
    QPushButton* m_unload = nullptr;
    QProgressBar* m_progress = nullptr;
    QLabel* m_loadStatus = nullptr;
};

}  // namespace lmw::gui
