#pragma once
// The Chat view: the conversation history (HistoryPanel) beside one tab per open conversation.
// Ctrl+T opens a tab, Ctrl+W closes it, a double click on a tab renames it.
#include <QWidget>

class QLabel;
class QTabWidget;

namespace lmw::gui {

class ChatController;
class ChatTab;
class HistoryPanel;

class ChatView : public QWidget {
    Q_OBJECT
public:
    explicit ChatView(ChatController* chat, QWidget* parent = nullptr);
    QTabWidget* tabs() const { return m_tabs; }
    QLabel* modelLabel() const { return m_model; }
    HistoryPanel* history() const { return m_history; }
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
    QLabel* m_model = nullptr;  // the loaded model, its quantization and context
    HistoryPanel* m_history = nullptr;
};

}  // namespace lmw::gui
