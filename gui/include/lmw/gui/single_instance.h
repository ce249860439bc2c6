#pragma once
// One lmworkbench per user (and per settings profile): a second launch hands its folder argument
// to the running one over a QLocalSocket and exits; the running one opens it in its window.
#include <QObject>
#include <QString>

class QLocalServer;

namespace lmw::gui {
class MainWindow;

class SingleInstance : public QObject {
    Q_OBJECT
public:
    // `key` names the instance: the user's settings file, so that --profile runs stay apart.
    explicit SingleInstance(const QString& key, QObject* parent = nullptr);
    // The socket's name: "lmworkbench-<user>-<hash of key>" (QLocalServer places it in the user's
    // runtime folder's stead, /tmp, with a user-only mode).
    QString serverName() const { return m_name; }

    // A running instance took `folder` (empty: just show yourself). False when none answered.
    bool sendToRunning(const QString& folder, int timeoutMs = 2000) const;
    // Become the running instance (a stale socket of a crashed one is removed first).
    bool listen();
    QString errorString() const { return m_error; }
    // Requests open their folder in `window` (MainWindow::startWith) and bring it to the front.
    void serve(MainWindow* window);

signals:
    // A second launch asked for this folder (absolute; empty: it had none).
    void openRequested(const QString& folder);

private:
    QString m_name, m_error;
    QLocalServer* m_server = nullptr;
};

}  // namespace lmw::gui
