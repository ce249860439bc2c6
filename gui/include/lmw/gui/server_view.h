#pragma once
// The Server view: Start/Stop of the embedded OpenAI-compatible server, its address, port and API
// key, the URL to copy, and the live request table.
#include <QWidget>

class QCheckBox;
class QComboBox;
class QLabel;
class QLineEdit;
class QPushButton;
class QSpinBox;
class QTableView;

namespace lmw::gui {

class ServerController;
class RequestLogModel;
struct ServerSettings;

class ServerView : public QWidget {
    Q_OBJECT
public:
    explicit ServerView(ServerController* server, QWidget* parent = nullptr);
    ServerSettings settings() const;
    void setSettings(const ServerSettings& s);
    RequestLogModel* log() const { return m_log; }
    QPushButton* toggleButton() const { return m_toggle; }

public slots:
    void toggle();

private:
    void updateState();
    void updateWarning();

    ServerController* m_server;
    RequestLogModel* m_log;
    QPushButton* m_toggle;
    QLabel* m_status;
    QComboBox* m_host;
    QSpinBox* m_port;
    QLineEdit* m_apiKey;
    QComboBox* m_pooling;
    QLabel* m_warning;
    QLineEdit* m_url;
    QPushButton* m_copy;
    QLabel* m_docs;
    QTableView* m_table;
};

}  // namespace lmw::gui
