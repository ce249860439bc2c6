#include "lmw/gui/memory_bar.h"

#include <QPainter>
#include <QPainterPath>

namespace lmw::gui {

MemoryBar::MemoryBar(QWidget* parent) : QWidget(parent) { setMinimumHeight(22); }

void MemoryBar::setPlan(const MemoryPlan& plan) {
    m_plan = plan;
    update();
}

void MemoryBar::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QRectF r = QRectF(rect()).adjusted(0.5, 0.5, -0.5, -0.5);
    QPainterPath frame;
    frame.addRoundedRect(r, 5, 5);
    p.fillPath(frame, QColor(0xee, 0xf0, 0xf3));
    // Scale to whichever is larger, so an overflow shows past the "free" line.
    const double scale = double(std::max<uint64_t>({m_plan.available, m_plan.total, 1}));
    p.save();
    p.setClipPath(frame);
    double x = r.left();
    auto segment = [&](uint64_t bytes, QColor c) {
        // A part too small to see still gets a sliver, so a tiny model does not look like nothing.
        const double w = bytes ? std::max(3.0, r.width() * double(bytes) / scale) : 0.0;
        p.fillRect(QRectF(x, r.top(), w, r.height()), c);
        x += w;
    };
    const bool fits = m_plan.fits;
    segment(m_plan.weights, fits ? QColor(0x3b, 0x5b, 0xdb) : QColor(0xc9, 0x2a, 0x2a));
    segment(m_plan.kvCache, fits ? QColor(0x74, 0x8f, 0xfc) : QColor(0xf0, 0x65, 0x65));
    segment(m_plan.overhead, fits ? QColor(0xba, 0xc8, 0xff) : QColor(0xff, 0xa8, 0xa8));
    p.restore();
    if (m_plan.available > 0) {  // the free-memory line
        const double fx = r.left() + r.width() * double(m_plan.available) / scale;
        p.setPen(QPen(QColor(0x2b, 0x8a, 0x3e), 2));
        p.drawLine(QPointF(fx - 1, r.top()), QPointF(fx - 1, r.bottom()));
    }
    p.setPen(QColor(0xce, 0xd4, 0xda));
    p.drawPath(frame);
}

}  // namespace lmw::gui
