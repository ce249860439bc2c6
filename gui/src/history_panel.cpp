#include "lmw/gui/history_panel.h"

#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QLocale>
#include <QMenu>
#include <QPushButton>
#include <QVBoxLayout>

#include "lmw/gui/chat_controller.h"

namespace lmw::gui {

HistoryPanel::HistoryPanel(ChatController* chat, QWidget* parent) : QWidget(parent), m_chat(chat) {
    setObjectName(QStringLiteral("sidePanel"));
    setMinimumWidth(180);
    auto* v = new QVBoxLayout(this);
    v->setContentsMargins(8, 8, 8, 8);
    auto* title = new QLabel(tr("History"));
    title->setObjectName(QStringLiteral("sectionTitle"));
    v->addWidget(title);
    m_search = new QLineEdit;
    m_search->setObjectName(QStringLiteral("historySearch"));
    m_search->setPlaceholderText(tr("Search chats…"));
    m_search->setClearButtonEnabled(true);
    v->addWidget(m_search);
    m_list = new QListWidget;
    m_list->setObjectName(QStringLiteral("historyList"));
    m_list->setContextMenuPolicy(Qt::CustomContextMenu);
    m_list->setSpacing(3);
    m_list->setWordWrap(true);
    m_list->installEventFilter(this);
    v->addWidget(m_list, 1);
    m_undoBar = new QWidget;
    auto* uh = new QHBoxLayout(m_undoBar);
    uh->setContentsMargins(0, 0, 0, 0);
    m_undoText = new QLabel;
    m_undoText->setObjectName(QStringLiteral("muted"));
    m_undoText->setWordWrap(true);
    m_undo = new QPushButton(tr("Undo"));
    m_undo->setObjectName(QStringLiteral("historyUndo"));
    uh->addWidget(m_undoText, 1);
    uh->addWidget(m_undo);
    m_undoBar->hide();
    v->addWidget(m_undoBar);

    connect(m_search, &QLineEdit::textChanged, this, &HistoryPanel::refresh);
    connect(m_list, &QListWidget::itemActivated, this,
            [this](QListWidgetItem* item) { activate(item->data(Qt::UserRole).toString()); });
    connect(m_list, &QWidget::customContextMenuRequested, this, [this](const QPoint& pos) {
        QListWidgetItem* item = m_list->itemAt(pos);
        if (!item) return;
        m_list->setCurrentItem(item);
        const QString id = item->data(Qt::UserRole).toString();
        QMenu menu;
        menu.addAction(tr("Open"), this, [this, id] { activate(id); });
        menu.addAction(tr("Rename…"), this, [this, id] {
            activate(id);
            emit renameRequested(id);
        });
        menu.addSeparator();
        menu.addAction(tr("Delete"), this, &HistoryPanel::removeSelected);
        menu.exec(m_list->viewport()->mapToGlobal(pos));
    });
    connect(m_undo, &QPushButton::clicked, this, [this] {
        m_chat->undoRemove();
        m_undoBar->hide();
    });
    // One signal covers every change the list shows (saved changes, removals, undo): one refresh each.
    connect(m_chat, &ChatController::historyChanged, this, &HistoryPanel::refresh);
    refresh();
}

QStringList HistoryPanel::shownIds() const {
    QStringList ids;
    for (int i = 0; i < m_list->count(); ++i) ids << m_list->item(i)->data(Qt::UserRole).toString();
    return ids;
}

void HistoryPanel::refresh() {
    const QString keep = selectedId();
    m_list->clear();
    for (const QString& id : m_chat->search(m_search->text())) {
        const Conversation* c = m_chat->conversation(id);
        auto* item = new QListWidgetItem(QStringLiteral("%1\n%2").arg(
            c->title, QLocale().toString(c->updated, QLocale::ShortFormat) + (c->open ? QString() : tr(" · closed"))));
        item->setData(Qt::UserRole, id);
        item->setToolTip(c->title);
        m_list->addItem(item);
        if (id == keep) m_list->setCurrentItem(item);
    }
}

QString HistoryPanel::selectedId() const {
    const QListWidgetItem* item = m_list->currentItem();
    return item ? item->data(Qt::UserRole).toString() : QString();
}

void HistoryPanel::activate(const QString& id) {
    const Conversation* c = m_chat->conversation(id);
    if (!c) return;
    if (!c->open) m_chat->reopenConversation(id);
    emit showRequested(id);
}

void HistoryPanel::removeSelected() {
    const QString id = selectedId();
    const Conversation* c = m_chat->conversation(id);
    if (!c) return;
    const QString title = c->title;
    m_chat->removeConversation(id);
    m_undoText->setText(tr("Deleted “%1”.").arg(title));
    m_undoBar->show();
}

bool HistoryPanel::eventFilter(QObject* o, QEvent* e) {
    if (o == m_list && e->type() == QEvent::KeyPress && static_cast<QKeyEvent*>(e)->key() == Qt::Key_Delete) {
        removeSelected();
        return true;
    }
    return QWidget::eventFilter(o, e);
}

}  // namespace lmw::gui
