#pragma once
// The Chat view: one tab per conversation. Ctrl+T opens a tab, Ctrl+W closes it, a double click on
// a tab renames it.
#include <QWidget>

class QTabWidget;

namespace lmw::gui {

class ChatController;
class ChatTab;

class ChatView : public QWidget {
    Q_OBJECT
public:
    explicit ChatView(ChatController* chat, QWidget* parent = nullptr);
    QTabWidget* tabs() const { return m_tabs; }
    ChatTab* currentTab() const;
    ChatTab* tab(const QString& id) const;

public slots:
    void newTab();
    void closeCurrentTab();
    void renameCurrentTab();  // asks for the name

private:
    void addTab(const QString& id);
    int indexOf(const QString& id) const;

    ChatController* m_chat;
    QTabWidget* m_tabs;
};

}  // namespace lmw::gui
