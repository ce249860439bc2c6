#pragma once
// The app's icons. They are drawn as SVG in resources/icons/; Debian's Qt may come without the SVG
// plugin, so the same shapes are also painted here and used when SVG cannot be read.
#include <QColor>
#include <QIcon>

namespace lmw::gui {

// "lmworkbench", "chat", "model", "server", "quantize"
QIcon appIcon(const QString& name, const QColor& color = QColor(0x44, 0x44, 0x44));

}  // namespace lmw::gui
