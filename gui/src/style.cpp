#include <QApplication>
#include <QPalette>
#include <QStyleFactory>

#include "lmw/gui/main_window.h"

static void initGuiResources() { Q_INIT_RESOURCE(lmworkbench); }

namespace lmw::gui {

void initResources() { initGuiResources(); }

void applyAppStyle() {
    QApplication::setStyle(QStyleFactory::create(QStringLiteral("Fusion")));
    QPalette p = QApplication::palette();
    p.setColor(QPalette::Window, QColor(0xf8, 0xf9, 0xfa));
    p.setColor(QPalette::Base, Qt::white);
    p.setColor(QPalette::AlternateBase, QColor(0xf1, 0xf3, 0xf5));
    p.setColor(QPalette::Highlight, QColor(0x3b, 0x5b, 0xdb));
    p.setColor(QPalette::Button, QColor(0xf1, 0xf3, 0xf5));
    QApplication::setPalette(p);
    qApp->setStyleSheet(QStringLiteral(R"(
QListWidget#sidebar { background: #1f2937; border: none; color: #d1d5db; outline: 0; }
QListWidget#sidebar::item { padding: 10px 4px; border-radius: 8px; margin: 4px 6px; }
QListWidget#sidebar::item:selected { background: #3b5bdb; color: white; }
QListWidget#sidebar::item:hover:!selected { background: #374151; }
QLabel#pageTitle { font-size: 18pt; font-weight: 600; color: #111827; }
QLabel#sectionTitle { font-weight: 600; color: #374151; margin-top: 6px; }
QLabel#muted, QLabel#stats { color: #6b7280; }
QLabel#warning { color: #b42318; background: #fef3f2; border: 1px solid #fecdca; border-radius: 6px; padding: 6px; }
QLabel#banner { color: #1e40af; background: #eff6ff; border-radius: 6px; padding: 4px 8px; }
QLabel#who { font-weight: 600; color: #374151; }
QGroupBox { font-weight: 600; border: 1px solid #e5e7eb; border-radius: 8px; margin-top: 12px; padding: 10px 8px 8px 8px; background: white; }
QGroupBox::title { subcontrol-origin: margin; left: 10px; padding: 0 4px; }
QPushButton { padding: 6px 14px; border-radius: 6px; border: 1px solid #d1d5db; background: white; }
QPushButton:hover { background: #f3f4f6; }
QPushButton:disabled { color: #9ca3af; background: #f9fafb; }
QPushButton#primary { background: #3b5bdb; color: white; border: 1px solid #3b5bdb; font-weight: 600; }
QPushButton#primary:hover { background: #364fc7; }
QPushButton#primary:disabled { background: #a5b4fc; border-color: #a5b4fc; }
QPushButton#primary:checked { background: #c92a2a; border-color: #c92a2a; }
QWidget#message { border-radius: 10px; border: 1px solid #e5e7eb; background: white; }
QWidget#message[role="user"] { background: #eef2ff; border-color: #c7d2fe; }
QWidget#messageList { background: #f8f9fa; }
QWidget#sidePanel { background: #f8f9fa; }
QPlainTextEdit, QLineEdit { border: 1px solid #d1d5db; border-radius: 6px; padding: 3px; background: white; }
QTabBar::tab { padding: 6px 14px; }
QStatusBar QLabel { color: #374151; padding: 0 8px; }
QProgressBar { border: 1px solid #d1d5db; border-radius: 5px; background: #eef0f3; text-align: center; min-height: 14px; }
QProgressBar::chunk { background: #3b5bdb; border-radius: 4px; }
)"));
}

}  // namespace lmw::gui
