#include "lmw/gui/request_log_model.h"

#include <QColor>

namespace lmw::gui {

RequestLogModel::RequestLogModel(QObject* parent, int limit) : QAbstractTableModel(parent), m_limit(limit) {}

void RequestLogModel::add(const ServerRequestRecord& r) {
    beginInsertRows({}, 0, 0);
    m_rows.prepend(r);
    endInsertRows();
    if (m_rows.size() > m_limit) {
        beginRemoveRows({}, m_limit, int(m_rows.size()) - 1);
        m_rows.resize(m_limit);
        endRemoveRows();
    }
}

void RequestLogModel::clear() {
    beginResetModel();
    m_rows.clear();
    endResetModel();
}

int RequestLogModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : int(m_rows.size()); }
int RequestLogModel::columnCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : ColumnCount; }

QVariant RequestLogModel::headerData(int section, Qt::Orientation o, int role) const {
    if (o != Qt::Horizontal || role != Qt::DisplayRole) return {};
    switch (section) {
        case Time: return tr("Time");
        case Endpoint: return tr("Endpoint");
        case Client: return tr("Client");
        case PromptTokens: return tr("Prompt");
        case CompletionTokens: return tr("Completion");
        case Ttft: return tr("First token");
        case TokensPerSecond: return tr("Tokens/s");
        case Status: return tr("Status");
    }
    return {};
}

QVariant RequestLogModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() >= m_rows.size()) return {};
    const ServerRequestRecord& r = m_rows[index.row()];
    const bool generation = r.promptTokens > 0 || r.completionTokens > 0;
    if (role == Qt::DisplayRole) {
        switch (index.column()) {
            case Time: return r.time.toString(QStringLiteral("hh:mm:ss"));
            case Endpoint: {
                // What kind of generation: streamed, with tools, constrained to JSON.
                QStringList marks;
                if (r.stream) marks << tr("stream");
                if (r.tools) marks << tr("tools");
                if (r.structured) marks << tr("JSON");
                return marks.isEmpty() ? QStringLiteral("%1 %2").arg(r.method, r.endpoint)
                                       : QStringLiteral("%1 %2 (%3)").arg(r.method, r.endpoint, marks.join(QStringLiteral(", ")));
            }
            case Client: return r.client;
            case PromptTokens: return generation ? QVariant(r.promptTokens) : QVariant();
            case CompletionTokens: return generation ? QVariant(r.completionTokens) : QVariant();
            case Ttft: return generation ? QStringLiteral("%1 ms").arg(int(r.ttftSeconds * 1000 + 0.5)) : QString();
            case TokensPerSecond: return generation ? QString::number(r.tokensPerSecond, 'f', 1) : QString();
            case Status: return r.finishReason.isEmpty() ? QString::number(r.status)
                                                         : QStringLiteral("%1 %2").arg(r.status).arg(r.finishReason);
        }
    } else if (role == Qt::ToolTipRole && !r.error.isEmpty()) {
        return r.error;
    } else if (role == Qt::ForegroundRole && index.column() == Status) {
        return r.status >= 400 ? QColor(0xc9, 0x2a, 0x2a) : QColor(0x2b, 0x8a, 0x3e);
    } else if (role == Qt::TextAlignmentRole && index.column() >= PromptTokens && index.column() <= TokensPerSecond) {
        return int(Qt::AlignRight | Qt::AlignVCenter);
    }
    return {};
}

}  // namespace lmw::gui
