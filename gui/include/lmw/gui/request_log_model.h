#pragma once
// The live request table of the Server view: newest request first, at most `limit` rows.
#include <QAbstractTableModel>
#include <QVector>

#include "lmw/gui/server_controller.h"

namespace lmw::gui {

class RequestLogModel : public QAbstractTableModel {
    Q_OBJECT
public:
    enum Column { Time, Endpoint, Client, PromptTokens, CompletionTokens, Ttft, TokensPerSecond, Status, ColumnCount };
    explicit RequestLogModel(QObject* parent = nullptr, int limit = 1000);

    void add(const ServerRequestRecord& r);
    void clear();
    const ServerRequestRecord& record(int row) const { return m_rows[row]; }

    int rowCount(const QModelIndex& parent = {}) const override;
    int columnCount(const QModelIndex& parent = {}) const override;
    QVariant data(const QModelIndex& index, int role) const override;
    QVariant headerData(int section, Qt::Orientation o, int role) const override;

private:
    QVector<ServerRequestRecord> m_rows;
    int m_limit;
};

}  // namespace lmw::gui
