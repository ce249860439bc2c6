#include "lmw/gui/chat_view.h"

#include <QHBoxLayout>
#include <QInputDialog>
#include <QLabel>
#include <QMenu>
#include <QPlainTextEdit>
#include <QSplitter>
#include <QTabBar>
#include <QTabWidget>
#include <QToolButton>
#include <QVBoxLayout>

#include "lmw/gui/chat_controller.h"
#include "lmw/gui/chat_tab.h"
#include "lmw/gui/history_panel.h"

namespace lmw::gui {

ChatView::ChatView(ChatController* chat, QWidget* parent) : QWidget(parent), m_chat(chat) {
    auto* v = new QVBoxLayout(this);
    v->setContentsMargins(0, 0, 0, 0);
    m_tabs = new QTabWidget;
    m_tabs->setTabsClosable(true);
    m_tabs->setMovable(false);  // tab order is the conversations' order
    m_tabs->setDocumentMode(true);
    auto* plus = new QToolButton;
    plus->setText(QStringLiteral("+"));
    plus->setToolTip(tr("New chat (Ctrl+T)"));
    plus->setAutoRaise(true);
    connect(plus, &QToolButton::clicked, this, &ChatView::newTab);
    // Which model answers, beside the tabs.
    auto* corner = new QWidget;
    auto* ch = new QHBoxLayout(corner);
    ch->setContentsMargins(8, 0, 4, 0);
    m_model = new QLabel;
    m_model->setObjectName(QStringLiteral("muted"));
    ch->addWidget(m_model);
    ch->addWidget(plus);
    m_tabs->setCornerWidget(corner, Qt::TopRightCorner);
    auto showModel = [this] {
        const EngineController* e = m_chat->engine();
        const auto* info = e->isReady() ? e->modelInfo() : nullptr;
        m_model->setText(info ? tr("%1 · %2 · %3-token context")
                                    .arg(QString::fromStdString(info->name),
                                         info->quantization == "none" ? tr("unquantized")
                                                                      : QString::fromStdString(info->quantization))
                                    .arg(e->sessionLength())
                              : tr("No model loaded"));
    };
    connect(m_chat->engine(), &EngineController::stateChanged, this, showModel);
    showModel();
    m_history = new HistoryPanel(m_chat);
    auto* split = new QSplitter;
    split->addWidget(m_history);
    split->addWidget(m_tabs);
    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 1);
    split->setSizes({220, 1000});
    v->addWidget(split);
    connect(m_history, &HistoryPanel::showRequested, this, [this](const QString& id) {
        if (const int i = indexOf(id); i >= 0) m_tabs->setCurrentIndex(i);
    });
    connect(m_history, &HistoryPanel::renameRequested, this, &ChatView::renameCurrentTab);

    connect(m_tabs, &QTabWidget::tabCloseRequested, this, [this](int i) {
        if (auto* t = qobject_cast<ChatTab*>(m_tabs->widget(i))) m_chat->closeConversation(t->id());
    });
    connect(m_tabs->tabBar(), &QTabBar::tabBarDoubleClicked, this, [this](int i) {
        if (i < 0) return;
        m_tabs->setCurrentIndex(i);
        renameCurrentTab();
    });
    m_tabs->tabBar()->setContextMenuPolicy(Qt::CustomContextMenu);
    connect(m_tabs->tabBar(), &QWidget::customContextMenuRequested, this, [this](const QPoint& pos) {
        const int i = m_tabs->tabBar()->tabAt(pos);
        if (i < 0) return;
        m_tabs->setCurrentIndex(i);
        QMenu menu;
        menu.addAction(tr("Rename…"), this, &ChatView::renameCurrentTab);
        menu.addAction(tr("Export as Markdown…"), this, [this] {
            if (auto* t = currentTab()) t->exportMarkdown();
        });
        menu.addSeparator();
        menu.addAction(tr("Close"), this, &ChatView::closeCurrentTab);
        menu.exec(m_tabs->tabBar()->mapToGlobal(pos));
    });

    connect(m_chat, &ChatController::conversationAdded, this, &ChatView::addTab);
    connect(m_chat, &ChatController::conversationRemoved, this, [this](const QString& id) {
        const int i = indexOf(id);
        if (i < 0) return;
        QWidget* w = m_tabs->widget(i);
        m_tabs->removeTab(i);
        w->deleteLater();
        if (m_tabs->count() == 0) m_chat->newConversation();  // never an empty view
    });
    connect(m_chat, &ChatController::conversationChanged, this, [this](const QString& id) {
        const int i = indexOf(id);
        if (const Conversation* c = m_chat->conversation(id); c && i >= 0) {
            m_tabs->setTabText(i, c->title);
            m_tabs->setTabToolTip(i, c->title);
        }
    });
    connect(m_chat, &ChatController::generatingChanged, this, [this](const QString& id, bool on) {
        const int i = indexOf(id);
        if (const Conversation* c = m_chat->conversation(id); c && i >= 0)
            m_tabs->setTabText(i, on ? QStringLiteral("● ") + c->title : c->title);
    });
    for (const QString& id : m_chat->ids()) addTab(id);
}

ChatTab* ChatView::currentTab() const { return qobject_cast<ChatTab*>(m_tabs->currentWidget()); }

ChatTab* ChatView::tab(const QString& id) const {
    const int i = indexOf(id);
    return i < 0 ? nullptr : qobject_cast<ChatTab*>(m_tabs->widget(i));
}

int ChatView::indexOf(const QString& id) const {
    for (int i = 0; i < m_tabs->count(); ++i)
        if (auto* t = qobject_cast<ChatTab*>(m_tabs->widget(i)); t && t->id() == id) return i;
    return -1;
}

void ChatView::addTab(const QString& id) {
    if (indexOf(id) >= 0) return;
    const Conversation* c = m_chat->conversation(id);
    auto* t = new ChatTab(m_chat, id);
    const int i = m_tabs->addTab(t, c ? c->title : id);
    m_tabs->setCurrentIndex(i);
    t->input()->setFocus();
}

void ChatView::newTab() { m_chat->newConversation(); }

void ChatView::closeCurrentTab() {
    if (auto* t = currentTab()) m_chat->closeConversation(t->id());
}

void ChatView::renameCurrentTab() {
    ChatTab* t = currentTab();
    if (!t) return;
    const Conversation* c = m_chat->conversation(t->id());
    bool ok = false;
    const QString name =
        QInputDialog::getText(this, tr("Rename chat"), tr("Name"), QLineEdit::Normal, c ? c->title : QString(), &ok);
    if (ok) m_chat->rename(t->id(), name);
}

}  // namespace lmw::gui
