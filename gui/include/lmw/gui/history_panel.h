#pragma once
// The conversation history beside the chat tabs: every conversation, open or closed, most recent
// first; a search box filters by title and content; a double click or Enter shows one (reopening a
// closed one); the context menu renames or deletes, and a delete can be undone from the bar that
// appears under the list.
#include <QWidget>

class QLabel;
class QLineEdit;
class QListWidget;
class QPushButton;

namespace lmw::gui {

class ChatController;

class HistoryPanel : public QWidget {
    Q_OBJECT
public:
    explicit HistoryPanel(ChatController* chat, QWidget* parent = nullptr);
    QLineEdit* searchBox() const { return m_search; }
    QListWidget* list() const { return m_list; }
    QPushButton* undoButton() const { return m_undo; }
    QStringList shownIds() const;  // the list's conversations, top to bottom

public slots:
    void refresh();
    void removeSelected();  // deletes the selected conversation (undoable)

signals:
    void showRequested(const QString& id);  // an open conversation was picked: show its tab
    void renameRequested(const QString& id);

protected:
    bool eventFilter(QObject* o, QEvent* e) override;

private:
    QString selectedId() const;
    void activate(const QString& id);

    ChatController* m_chat;
    QLineEdit* m_search;
    QListWidget* m_list;
    QWidget* m_undoBar;
    QLabel* m_undoText;
    QPushButton* m_undo;
};

}  // namespace lmw::gui
