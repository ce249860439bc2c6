#pragma once
// The main window: a sidebar switching Chat / Models / Server / Quantize, the menus and shortcuts,
// the status bar, and the one place errors become dialogs (non-blocking, and observable through
// errorShown so tests never wait on a dialog).
#include <QMainWindow>

class QLabel;
class QListWidget;
class QStackedWidget;
class QMenu;

namespace lmw::gui {

class ChatController;
class ChatView;
class EngineController;
class ModelView;
class QuantizeController;
class QuantizeWizard;
class ServerController;
class ServerView;

class MainWindow : public QMainWindow {
    Q_OBJECT
public:
    enum View { ChatPage, ModelsPage, ServerPage, QuantizePage };
    Q_ENUM(View)
    static constexpr QSize kMinimumSize{960, 640};

    // conversationsDir empty: the app data folder.
    explicit MainWindow(const QString& conversationsDir = {}, QWidget* parent = nullptr);
    ~MainWindow() override;

    EngineController* engine() const { return m_engine; }
    ChatController* chat() const { return m_chat; }
    ServerController* server() const { return m_server; }
    QuantizeController* quantizer() const { return m_quantizer; }
    ModelView* modelView() const { return m_modelView; }
    ChatView* chatView() const { return m_chatView; }
    ServerView* serverView() const { return m_serverView; }
    QuantizeWizard* wizard() const { return m_wizard; }

    View currentView() const;
    void setDialogsEnabled(bool on) { m_dialogs = on; }
    QString statusText() const;  // the status bar's text, joined

public slots:
    void showView(lmw::gui::MainWindow::View view);
    void showError(const QString& title, const QString& message);
    // Command line start: open (and load) this folder, else the last model, else the picker.
    void startWith(const QString& modelDir);

signals:
    void errorShown(const QString& title, const QString& message);

protected:
    void closeEvent(QCloseEvent* e) override;

private:
    void buildMenus();
    void updateStatus();
    void rebuildRecentMenu();

    EngineController* m_engine;
    ChatController* m_chat;
    ServerController* m_server;
    QuantizeController* m_quantizer;
    QListWidget* m_sidebar;
    QStackedWidget* m_stack;
    ModelView* m_modelView;
    ChatView* m_chatView;
    ServerView* m_serverView;
    QuantizeWizard* m_wizard;
    QMenu* m_recentMenu = nullptr;
    QLabel* m_device;
    QLabel* m_memory;
    QLabel* m_state;
    bool m_dialogs = true;
};

// Fusion style with the app's palette and style sheet.
void applyAppStyle();
// Registers the resources of the static lmw_gui library (call once after QApplication).
void initResources();

}  // namespace lmw::gui
