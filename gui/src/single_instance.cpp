#include "lmw/gui/single_instance.h"

#include <QCryptographicHash>
#include <QLocalServer>
#include <QLocalSocket>

#include <memory>

#include "lmw/gui/main_window.h"

#include <unistd.h>

namespace lmw::gui {
namespace {
// One message per connection: "open\n" + the folder in UTF-8, then the client closes.
constexpr char kPrefix[] = "open\n";
}  // namespace

SingleInstance::SingleInstance(const QString& key, QObject* parent) : QObject(parent) {
    const QByteArray hash = QCryptographicHash::hash(key.toUtf8(), QCryptographicHash::Sha256).toHex().left(12);
    m_name = QStringLiteral("lmworkbench-%1-%2").arg(::getuid()).arg(QString::fromLatin1(hash));
}

bool SingleInstance::sendToRunning(const QString& folder, int timeoutMs) const {
    QLocalSocket socket;
    socket.connectToServer(m_name);
    if (!socket.waitForConnected(timeoutMs)) return false;
    socket.write(QByteArray(kPrefix) + folder.toUtf8());
    socket.flush();
    const bool sent = socket.bytesToWrite() == 0 || socket.waitForBytesWritten(timeoutMs);
    socket.disconnectFromServer();
    if (socket.state() != QLocalSocket::UnconnectedState) socket.waitForDisconnected(timeoutMs);
    return sent;
}

bool SingleInstance::listen() {
    m_server = new QLocalServer(this);
    m_server->setSocketOptions(QLocalServer::UserAccessOption);
    if (!m_server->listen(m_name)) {
        // A socket file left by a crashed instance (nobody answered sendToRunning): take its place.
        QLocalServer::removeServer(m_name);
        if (!m_server->listen(m_name)) {
            m_error = m_server->errorString();
            return false;
        }
    }
    connect(m_server, &QLocalServer::newConnection, this, [this] {
        while (QLocalSocket* socket = m_server->nextPendingConnection()) {
            auto buffer = std::make_shared<QByteArray>();
            auto finish = [this, socket, buffer] {
                *buffer += socket->readAll();
                socket->deleteLater();
                if (buffer->startsWith(kPrefix)) emit openRequested(QString::fromUtf8(buffer->mid(sizeof kPrefix - 1)));
            };
            connect(socket, &QLocalSocket::readyRead, socket, [socket, buffer] { *buffer += socket->readAll(); });
            if (socket->state() == QLocalSocket::ConnectedState)
                connect(socket, &QLocalSocket::disconnected, this, finish);
            else
                finish();  // it wrote and closed before we looked
        }
    });
    return true;
}

void SingleInstance::serve(MainWindow* window) {
    connect(this, &SingleInstance::openRequested, window, [window](const QString& dir) {
        if (!dir.isEmpty()) window->startWith(dir);
        window->setWindowState((window->windowState() & ~Qt::WindowMinimized) | Qt::WindowActive);
        window->raise();
        window->activateWindow();
    });
}

}  // namespace lmw::gui
