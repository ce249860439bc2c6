#include "lmw/gui/server_view.h"

#include <algorithm>

#include <QClipboard>
#include <QComboBox>
#include <QFormLayout>
#include <QGroupBox>
#include <QGuiApplication>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QSpinBox>
#include <QTableView>
#include <QVBoxLayout>

#include "lmw/gui/request_log_model.h"
#include "lmw/gui/server_controller.h"

namespace lmw::gui {

ServerView::ServerView(ServerController* server, QWidget* parent) : QWidget(parent), m_server(server) {
    m_log = new RequestLogModel(this);
    auto* v = new QVBoxLayout(this);
    v->setContentsMargins(16, 16, 16, 16);
    auto* title = new QLabel(tr("OpenAI- and Anthropic-compatible server"));
    title->setObjectName(QStringLiteral("pageTitle"));
    v->addWidget(title);
    auto* sub = new QLabel(tr("Serves the loaded model at /v1/chat/completions, /v1/completions, /v1/responses, "
                              "/v1/messages (Anthropic) and /v1/models. "
                              "Chat tabs and API requests share the one engine and are batched together."));
    sub->setObjectName(QStringLiteral("muted"));
    sub->setWordWrap(true);
    v->addWidget(sub);

    auto* top = new QHBoxLayout;
    auto* box = new QGroupBox(tr("Settings"));
    auto* f = new QFormLayout(box);
    m_host = new QComboBox;
    m_host->setEditable(true);
    m_host->addItem(QStringLiteral("127.0.0.1"));
    m_host->addItem(QStringLiteral("0.0.0.0"));
    m_host->setToolTip(tr("127.0.0.1: only this computer. 0.0.0.0: every network this computer is on."));
    m_port = new QSpinBox;
    m_port->setRange(1, 65535);
    m_apiKey = new QLineEdit;
    m_apiKey->setPlaceholderText(tr("none (anyone who can connect may use it)"));
    m_apiKey->setEchoMode(QLineEdit::PasswordEchoOnEdit);
    f->addRow(tr("Bind address"), m_host);
    f->addRow(tr("Port"), m_port);
    f->addRow(tr("API key"), m_apiKey);
    m_pooling = new QComboBox;
    m_pooling->setObjectName(QStringLiteral("embeddingPooling"));
    m_pooling->addItem(tr("Mean of the tokens"), QStringLiteral("mean"));
    m_pooling->addItem(tr("Last token"), QStringLiteral("last"));
    m_pooling->setToolTip(tr("/v1/embeddings: an input's vector is its tokens' final hidden states pooled this way, "
                             "L2-normalized"));
    f->addRow(tr("Embeddings"), m_pooling);
    m_warning = new QLabel;
    m_warning->setObjectName(QStringLiteral("warning"));
    m_warning->setWordWrap(true);
    f->addRow(m_warning);
    top->addWidget(box, 1);

    auto* runBox = new QGroupBox(tr("Status"));
    auto* rv = new QVBoxLayout(runBox);
    auto* row = new QHBoxLayout;
    m_toggle = new QPushButton;
    m_toggle->setObjectName(QStringLiteral("primary"));
    m_toggle->setCheckable(true);
    m_toggle->setMinimumWidth(140);
    m_status = new QLabel;
    row->addWidget(m_toggle);
    row->addWidget(m_status, 1);
    rv->addLayout(row);
    auto* urlRow = new QHBoxLayout;
    m_url = new QLineEdit;
    m_url->setReadOnly(true);
    m_copy = new QPushButton(tr("Copy"));
    urlRow->addWidget(m_url, 1);
    urlRow->addWidget(m_copy);
    rv->addLayout(urlRow);
    m_docs = new QLabel;
    m_docs->setOpenExternalLinks(true);
    m_docs->setTextInteractionFlags(Qt::TextBrowserInteraction);
    rv->addWidget(m_docs);
    rv->addStretch(1);
    top->addWidget(runBox, 1);
    v->addLayout(top);

    auto* logTitle = new QLabel(tr("Requests"));
    logTitle->setObjectName(QStringLiteral("sectionTitle"));
    v->addWidget(logTitle);
    m_table = new QTableView;
    m_table->setModel(m_log);
    m_table->verticalHeader()->hide();
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setAlternatingRowColors(true);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->horizontalHeader()->setSectionResizeMode(RequestLogModel::Endpoint, QHeaderView::Stretch);
    v->addWidget(m_table, 1);

    connect(m_toggle, &QPushButton::clicked, this, &ServerView::toggle);
    connect(m_copy, &QPushButton::clicked, this, [this] { QGuiApplication::clipboard()->setText(m_url->text()); });
    connect(m_host, &QComboBox::currentTextChanged, this, &ServerView::updateWarning);
    connect(m_apiKey, &QLineEdit::textChanged, this, &ServerView::updateWarning);
    connect(m_server, &ServerController::stateChanged, this, &ServerView::updateState);
    connect(m_server, &ServerController::requestLogged, m_log, &RequestLogModel::add);
    setSettings(ServerSettings::load());
    updateState();
}

ServerSettings ServerView::settings() const {
    ServerSettings s;
    s.host = m_host->currentText().trimmed();
    s.port = m_port->value();
    s.apiKey = m_apiKey->text();
    s.embeddingPooling = m_pooling->currentData().toString();
    return s;
}

void ServerView::setSettings(const ServerSettings& s) {
    m_host->setCurrentText(s.host);
    m_port->setValue(s.port);
    m_apiKey->setText(s.apiKey);
    m_pooling->setCurrentIndex(std::max(0, m_pooling->findData(s.embeddingPooling)));
    updateWarning();
}

void ServerView::toggle() {
    if (m_server->state() == ServerController::State::Running) {
        m_server->stop();
    } else if (m_server->state() == ServerController::State::Stopped) {
        const ServerSettings s = settings();
        s.save();
        m_server->start(s);
    }
    updateState();
}

void ServerView::updateWarning() {
    const ServerSettings s = settings();
    QString w;
    if (s.exposesNetwork())
        w = s.apiKey.isEmpty() ? tr("⚠ %1 exposes the server to your network and there is no API key: anyone who can "
                                    "reach this computer can use the model.").arg(s.host)
                               : tr("⚠ %1 exposes the server to your network; clients need the API key.").arg(s.host);
    m_warning->setText(w);
    m_warning->setVisible(!w.isEmpty());
}

void ServerView::updateState() {
    using S = ServerController::State;
    const S st = m_server->state();
    const bool running = st == S::Running;
    m_toggle->setChecked(running);
    m_toggle->setEnabled(st != S::Stopping && ServerController::available());
    m_toggle->setText(running ? tr("Stop server") : st == S::Stopping ? tr("Stopping…") : tr("Start server"));
    m_status->setText(running ? tr("<b style='color:#2b8a3e'>Serving</b> on port %1").arg(m_server->port())
                              : st == S::Stopping ? tr("Stopping…") : tr("Stopped"));
    for (QWidget* w : {static_cast<QWidget*>(m_host), static_cast<QWidget*>(m_port), static_cast<QWidget*>(m_apiKey),
                       static_cast<QWidget*>(m_pooling)})
        w->setEnabled(st == S::Stopped);
    const QString base = running ? m_server->url() : QStringLiteral("http://%1:%2").arg(settings().host).arg(settings().port);
    m_url->setText(base + QStringLiteral("/v1"));
    m_copy->setEnabled(running);
    m_docs->setText(running ? tr("<a href='%1/docs'>API documentation</a> · <a href='%1/v1/models'>/v1/models</a>").arg(base)
                            : tr("Start the server to get the API documentation page at %1/docs.").arg(base));
}

}  // namespace lmw::gui
