#include "lmw/gui/main_window.h"

#include <QApplication>
#include <QCloseEvent>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QLabel>
#include <QListWidget>
#include <QLocale>
#include <QMenuBar>
#include <QMessageBox>
#include <QStackedWidget>
#include <QStatusBar>

#include "lmw/gui/chat_controller.h"
#include "lmw/gui/chat_tab.h"
#include "lmw/gui/chat_view.h"
#include "lmw/gui/engine_controller.h"
#include "lmw/gui/engine_settings.h"
#include "lmw/gui/icons.h"
#include "lmw/gui/model_view.h"
#include "lmw/gui/quantize_controller.h"
#include "lmw/gui/quantize_wizard.h"
#include "lmw/gui/server_controller.h"
#include "lmw/gui/server_view.h"
#include "lmw/version.h"

namespace lmw::gui {

MainWindow::MainWindow(const QString& conversationsDir, QWidget* parent) : QMainWindow(parent) {
    setWindowTitle(QStringLiteral("LM Workbench"));
    setWindowIcon(appIcon(QStringLiteral("lmworkbench")));
    resize(1280, 800);
    // Below this the chat's settings panel squeezes its spin boxes to slivers and the quantize
    // result page pushes its Open button out of the window.
    setMinimumSize(kMinimumSize);

    m_engine = new EngineController(this);
    m_chat = new ChatController(m_engine, ConversationStore(conversationsDir), this);
    m_server = new ServerController(m_engine, this);
    m_quantizer = new QuantizeController(this);

    auto* central = new QWidget;
    auto* h = new QHBoxLayout(central);
    h->setContentsMargins(0, 0, 0, 0);
    h->setSpacing(0);
    m_sidebar = new QListWidget;
    m_sidebar->setObjectName(QStringLiteral("sidebar"));
    m_sidebar->setFixedWidth(104);
    m_sidebar->setIconSize(QSize(28, 28));
    m_sidebar->setViewMode(QListView::IconMode);
    m_sidebar->setMovement(QListView::Static);
    m_sidebar->setFlow(QListView::TopToBottom);
    m_sidebar->setSpacing(2);
    m_sidebar->setGridSize(QSize(96, 78));
    const QColor light(0xe5, 0xe7, 0xeb);
    for (auto [name, icon] : {std::pair{tr("Chat"), "chat"}, std::pair{tr("Models"), "model"},
                              std::pair{tr("Server"), "server"}, std::pair{tr("Quantize"), "quantize"}}) {
        auto* item = new QListWidgetItem(appIcon(QString::fromLatin1(icon), light), name);
        item->setTextAlignment(Qt::AlignHCenter | Qt::AlignBottom);
        item->setSizeHint(QSize(92, 72));
        m_sidebar->addItem(item);
    }
    h->addWidget(m_sidebar);
    m_stack = new QStackedWidget;
    m_chatView = new ChatView(m_chat);
    m_modelView = new ModelView(m_engine);
    m_serverView = new ServerView(m_server);
    m_wizard = new QuantizeWizard(m_quantizer);
    m_stack->addWidget(m_chatView);
    m_stack->addWidget(m_modelView);
    m_stack->addWidget(m_serverView);
    m_stack->addWidget(m_wizard);
    h->addWidget(m_stack, 1);
    setCentralWidget(central);
    connect(m_sidebar, &QListWidget::currentRowChanged, m_stack, &QStackedWidget::setCurrentIndex);

    m_device = new QLabel;
    m_memory = new QLabel;
    m_state = new QLabel;
    statusBar()->addWidget(m_device);
    statusBar()->addWidget(m_memory);
    statusBar()->addPermanentWidget(m_state);

    for (auto* src : {static_cast<QObject*>(m_engine), static_cast<QObject*>(m_chat), static_cast<QObject*>(m_server),
                      static_cast<QObject*>(m_quantizer), static_cast<QObject*>(m_modelView)})
        connect(src, SIGNAL(errorOccurred(QString, QString)), this, SLOT(showError(QString, QString)));

    connect(m_chat, &ChatController::noticed, this, [this](const QString& m) { statusBar()->showMessage(m, 8000); });
    connect(m_engine, &EngineController::stateChanged, this, &MainWindow::updateStatus);
    connect(m_engine, &EngineController::statsUpdated, this, &MainWindow::updateStatus);
    connect(m_engine, &EngineController::generationFinished, this, &MainWindow::updateStatus);
    connect(m_chat, &ChatController::generatingChanged, this, &MainWindow::updateStatus);
    connect(m_server, &ServerController::stateChanged, this, &MainWindow::updateStatus);
    connect(m_quantizer, &QuantizeController::runningChanged, this, &MainWindow::updateStatus);
    connect(m_engine, &EngineController::loaded, this, [this](const QString& dir) {
        setWindowTitle(QStringLiteral("%1 — LM Workbench").arg(QFileInfo(dir).fileName()));
        rebuildRecentMenu();
    });
    connect(m_engine, &EngineController::unloaded, this, [this] { setWindowTitle(QStringLiteral("LM Workbench")); });
    connect(m_modelView, &ModelView::modelInfoReady, this, [this](const QString& dir) { m_wizard->setSourceModel(dir); });
    connect(m_wizard, &QuantizeWizard::openModelRequested, this, [this](const QString& dir) {
        showView(ModelsPage);
        m_modelView->openAndLoad(dir);
    });

    buildMenus();
    m_chat->restore();
    showView(ChatPage);
    updateStatus();
}

MainWindow::~MainWindow() {
    // Views first (they point at the controllers), then the server (it holds the engine), the
    // quantizer (waits for its thread), the chat, and the engine last.
    delete centralWidget();
    delete m_server;
    delete m_quantizer;
    delete m_chat;
    delete m_engine;
}

void MainWindow::buildMenus() {
    QMenu* file = menuBar()->addMenu(tr("&Model"));
    file->addAction(tr("&Open model folder…"), QKeySequence::Open, this, [this] {
        showView(ModelsPage);
        m_modelView->chooseFolder();
    });
    m_recentMenu = file->addMenu(tr("Recent models"));
    rebuildRecentMenu();
    file->addAction(tr("&Unload"), m_engine, &EngineController::unload);
    file->addSeparator();
    file->addAction(tr("&Quit"), QKeySequence::Quit, this, &QWidget::close);

    QMenu* chat = menuBar()->addMenu(tr("&Chat"));
    chat->addAction(tr("&New chat"), QKeySequence(Qt::CTRL | Qt::Key_T), this, [this] {
        showView(ChatPage);
        m_chatView->newTab();
    });
    chat->addAction(tr("&Close chat"), QKeySequence(Qt::CTRL | Qt::Key_W), m_chatView, &ChatView::closeCurrentTab);
    chat->addAction(tr("Reopen closed chat"), QKeySequence(Qt::CTRL | Qt::SHIFT | Qt::Key_T), this, [this] {
        const QStringList closed = m_chat->closedIds();
        if (closed.isEmpty()) return;
        showView(ChatPage);
        m_chat->reopenConversation(closed.first());
    });
    QMenu* recent = chat->addMenu(tr("Closed chats"));
    connect(chat, &QMenu::aboutToShow, this, [this, recent] {
        recent->clear();
        for (const QString& id : m_chat->closedIds().mid(0, 20)) {
            const Conversation* c = m_chat->conversation(id);
            recent->addAction(QStringLiteral("%1 — %2").arg(c->title, QLocale().toString(c->updated, QLocale::ShortFormat)),
                              this, [this, id] {
                                  showView(ChatPage);
                                  m_chat->reopenConversation(id);
                              });
        }
        recent->setEnabled(!recent->isEmpty());
    });
    chat->addAction(tr("&Rename chat…"), QKeySequence(Qt::Key_F2), m_chatView, &ChatView::renameCurrentTab);
    chat->addAction(tr("&Export as Markdown…"), this, [this] {
        if (auto* t = m_chatView->currentTab()) t->exportMarkdown();
    });

    QMenu* view = menuBar()->addMenu(tr("&View"));
    const QStringList names{tr("Chat"), tr("Models"), tr("Server"), tr("Quantize")};
    for (int i = 0; i < names.size(); ++i)
        view->addAction(names[i], QKeySequence(Qt::CTRL | Qt::Key(Qt::Key_1 + i)), this, [this, i] { showView(View(i)); });

    QMenu* help = menuBar()->addMenu(tr("&Help"));
    help->addAction(tr("&About LM Workbench"), this, [this] {
        // The facts of `lmw --version` (lmw::versionFacts), with the Qt this app runs on.
        auto facts = lmw::versionFacts();
        facts.insert(facts.begin() + 1, {"Qt", qVersion()});
        QString rows;
        for (size_t i = 1; i < facts.size(); ++i)
            rows += QStringLiteral("<tr><td>%1:&nbsp;</td><td>%2</td></tr>")
                        .arg(QString::fromStdString(facts[i].first).toHtmlEscaped(),
                             QString::fromStdString(facts[i].second).toHtmlEscaped());
        QMessageBox::about(this, tr("About LM Workbench"),
                           tr("<h3>LM Workbench %1</h3><p>Run, chat with, serve and quantize large language models on "
                              "this computer.</p><table>%2</table>")
                               .arg(QString::fromStdString(facts.front().second), rows));
    });
}

void MainWindow::rebuildRecentMenu() {
    if (!m_recentMenu) return;
    m_recentMenu->clear();
    for (const QString& dir : RecentModels::list())
        m_recentMenu->addAction(QFileInfo(dir).fileName(), this, [this, dir] {
            showView(ModelsPage);
            m_modelView->openModel(dir);
        })->setToolTip(dir);
    m_recentMenu->setEnabled(!m_recentMenu->isEmpty());
}

MainWindow::View MainWindow::currentView() const { return View(m_stack->currentIndex()); }

void MainWindow::showView(View view) {
    m_sidebar->setCurrentRow(int(view));
    m_stack->setCurrentIndex(int(view));
}

void MainWindow::startWith(const QString& modelDir) {
    QString dir = modelDir;
    if (dir.isEmpty()) {
        dir = RecentModels::last();
        if (!dir.isEmpty() && !QFileInfo(dir + QStringLiteral("/config.json")).exists()) dir.clear();
    }
    if (dir.isEmpty()) {
        showView(ModelsPage);  // the picker
        return;
    }
    m_modelView->openAndLoad(dir);
    showView(ChatPage);
}

void MainWindow::showError(const QString& title, const QString& message) {
    emit errorShown(title, message);
    statusBar()->showMessage(title, 8000);
    if (!m_dialogs) return;
    // open(), not exec(): the event loop (and streaming in other tabs) keeps running.
    auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}

QString MainWindow::statusText() const { return QStringList{m_device->text(), m_memory->text(), m_state->text()}.join(QStringLiteral(" | ")); }

void MainWindow::updateStatus() {
    const auto s = m_engine->stats();
    if (m_engine->isReady()) {
        m_device->setText(QStringLiteral("%1 · %2").arg(QString::fromStdString(s.backend).toUpper(),
                                                         QString::fromStdString(s.device)));
        auto fmt = [](uint64_t n) { return QString::fromStdString(lmw::engine::formatBytes(n)); };
        QString mem;
        // One figure per backend, never both in turn: the GPU's memory, or on the CPU (where the
        // whole system's use says little) what the model holds.
        if (s.backend != "cpu" && s.deviceMemoryUsed && s.deviceMemoryTotal) {
            mem = tr("Memory %1 / %2").arg(fmt(s.deviceMemoryUsed), fmt(s.deviceMemoryTotal));
        } else if (const auto* info = m_engine->modelInfo()) {  // no device figure yet: what we hold
            const uint64_t kv =
                uint64_t(s.kvTokenCapacity) * info->kvBytesPerToken(m_engine->engine()->config().quantPolicy, s.backend);
            mem = tr("Model %1 + KV cache %2").arg(fmt(info->weightBytes), fmt(kv));
        }
        if (s.kvBlocksTotal)
            mem += tr(" · %1% of the KV cache in use").arg(int(100.0 * double(s.kvBlocksUsed) / double(s.kvBlocksTotal) + 0.5));
        m_memory->setText(mem);
    } else {
        m_device->setText(tr("No model loaded"));
        m_memory->clear();
    }
    QStringList state;
    switch (m_engine->state()) {
        case EngineController::State::Loading: state << tr("loading"); break;
        case EngineController::State::Unloading: state << tr("unloading"); break;
        case EngineController::State::Unloaded: break;
        case EngineController::State::Ready: {
            const int n = std::max(m_engine->activeRequests(), s.running + s.waiting);
            state << (n > 0 ? tr("generating %n request(s)", nullptr, n) : tr("idle"));
            break;
        }
    }
    if (m_quantizer->isRunning()) state << tr("quantizing");
    if (m_server->isRunning()) state << tr("serving on :%1").arg(m_server->port());
    m_state->setText(state.isEmpty() ? tr("idle") : state.join(QStringLiteral(" · ")));
}

void MainWindow::closeEvent(QCloseEvent* e) {
    if (m_quantizer->isRunning()) {
        m_quantizer->cancel();  // the destructor waits for it to stop
    }
    QMainWindow::closeEvent(e);
}

}  // namespace lmw::gui
