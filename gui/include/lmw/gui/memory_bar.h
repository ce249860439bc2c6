#pragma once
// A horizontal bar: weights, KV cache and overhead against the free memory of a device.
#include <QWidget>

#include "lmw/gui/memory_planner.h"

namespace lmw::gui {

class MemoryBar : public QWidget {
    Q_OBJECT
public:
    explicit MemoryBar(QWidget* parent = nullptr);
    void setPlan(const MemoryPlan& plan);
    QSize sizeHint() const override { return {360, 28}; }

protected:
    void paintEvent(QPaintEvent*) override;

private:
    MemoryPlan m_plan;
};

}  // namespace lmw::gui
