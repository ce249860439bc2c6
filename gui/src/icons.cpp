#include "lmw/gui/icons.h"

#include <QImageReader>
#include <QPainter>
#include <QPainterPath>
#include <QPolygonF>
#include <QPixmap>

namespace lmw::gui {

static QPainterPath rounded(const QRectF& r, qreal radius) {
    QPainterPath p;
    p.addRoundedRect(r, radius, radius);
    return p;
}

// Paints the 24x24 (app icon: 128x128) shapes of resources/icons/*.svg.
static void paintShape(QPainter& p, const QString& name, const QColor& color) {
    QPen pen(color, 2, Qt::SolidLine, Qt::RoundCap, Qt::RoundJoin);
    if (name == QLatin1String("lmworkbench")) {
        p.scale(24.0 / 128.0, 24.0 / 128.0);
        const QColor blue(0x3b, 0x5b, 0xdb);
        p.setPen(Qt::NoPen);
        p.setBrush(blue);
        p.drawPath(rounded({8, 8, 112, 112}, 26));
        QPainterPath bubble;
        bubble.addRoundedRect(QRectF(22, 42, 84, 46), 8, 8);
        QPainterPath tail;
        tail.moveTo(46, 86);
        tail.lineTo(46, 102);
        tail.lineTo(64, 86);
        tail.closeSubpath();
        p.setBrush(Qt::white);
        p.drawPath(bubble.united(tail));
        p.setBrush(blue);
        for (int x : {46, 64, 82}) p.drawEllipse(QPointF(x, 65), 6, 6);
        return;
    }
    p.setPen(pen);
    p.setBrush(Qt::NoBrush);
    if (name == QLatin1String("chat")) {
        p.drawPolygon(QPolygonF({{4, 5}, {20, 5}, {20, 16}, {11, 16}, {7, 19}, {7, 16}, {4, 16}}));
    } else if (name == QLatin1String("model")) {
        QPainterPath path;
        path.moveTo(12, 3);
        path.lineTo(20, 7.5);
        path.lineTo(20, 16.5);
        path.lineTo(12, 21);
        path.lineTo(4, 16.5);
        path.lineTo(4, 7.5);
        path.closeSubpath();
        path.moveTo(4, 7.5);
        path.lineTo(12, 12);
        path.lineTo(20, 7.5);
        path.moveTo(12, 12);
        path.lineTo(12, 21);
        p.drawPath(path);
    } else if (name == QLatin1String("server")) {
        p.drawPath(rounded({4, 4, 16, 6}, 1.5));
        p.drawPath(rounded({4, 14, 16, 6}, 1.5));
        p.setBrush(color);
        p.drawEllipse(QPointF(8, 7), 0.8, 0.8);
        p.drawEllipse(QPointF(8, 17), 0.8, 0.8);
    } else if (name == QLatin1String("quantize")) {
        QPainterPath path;
        path.moveTo(4, 20);
        for (int i = 0; i < 4; ++i) {
            path.lineTo(4 + 4 * i, 16 - 4 * i);
            path.lineTo(8 + 4 * i, 16 - 4 * i);
        }
        path.lineTo(20, 20);
        path.closeSubpath();
        p.drawPath(path);
    }
}

QIcon appIcon(const QString& name, const QColor& color) {
    const QString file = QStringLiteral(":/icons/%1.svg").arg(name);
    if (QImageReader::supportedImageFormats().contains("svg") && color == QColor(0x44, 0x44, 0x44)) return QIcon(file);
    QIcon icon;
    for (int size : {16, 24, 32, 48, 64, 128, 256}) {
        QPixmap pm(size, size);
        pm.fill(Qt::transparent);
        QPainter p(&pm);
        p.setRenderHint(QPainter::Antialiasing);
        p.scale(size / 24.0, size / 24.0);
        paintShape(p, name, color);
        p.end();
        icon.addPixmap(pm);
    }
    return icon;
}

}  // namespace lmw::gui
