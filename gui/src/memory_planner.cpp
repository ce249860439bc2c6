#include "lmw/gui/memory_planner.h"

#include <QFile>
#include <QProcess>
#include <QRegularExpression>
#include <QThread>

namespace lmw::gui {

using lmw::engine::formatBytes;

QString kvPrecisionName(int quantPolicy, const QString& deviceKind) {
    switch (quantPolicy) {
        case 8: return QStringLiteral("int8");
        case 4: return QStringLiteral("int4");
        default: return deviceKind == QLatin1String("cpu") ? QStringLiteral("32-bit") : QStringLiteral("16-bit");
    }
}

static DeviceMemory probeCpu() {
    DeviceMemory d;
    d.kind = QStringLiteral("cpu");
    d.name = QStringLiteral("CPU (%1 threads)").arg(QThread::idealThreadCount());
    QFile f(QStringLiteral("/proc/meminfo"));
    if (f.open(QIODevice::ReadOnly)) {
        const QString text = QString::fromLatin1(f.readAll());
        auto field = [&](const char* name) -> uint64_t {
            QRegularExpression re(QStringLiteral("^%1:\\s+(\\d+) kB").arg(QLatin1String(name)),
                                  QRegularExpression::MultilineOption);
            auto m = re.match(text);
            return m.hasMatch() ? m.captured(1).toULongLong() * 1024 : 0;
        };
        d.totalBytes = field("MemTotal");
        d.freeBytes = field("MemAvailable");
    }
    return d;
}

static QList<DeviceMemory> probeCuda() {
    QList<DeviceMemory> out;
    QProcess p;
    p.start(QStringLiteral("nvidia-smi"), {QStringLiteral("--query-gpu=name,memory.total,memory.free"),
                                           QStringLiteral("--format=csv,noheader,nounits")});
    if (!p.waitForStarted(1000) || !p.waitForFinished(3000) || p.exitCode() != 0) return out;
    const auto lines = QString::fromUtf8(p.readAllStandardOutput()).split(QLatin1Char('\n'), Qt::SkipEmptyParts);
    for (const QString& line : lines) {
        const auto parts = line.split(QLatin1Char(','));
        if (parts.size() < 3) continue;
        DeviceMemory d;
        d.kind = QStringLiteral("cuda");
        d.name = parts[0].trimmed();
        d.totalBytes = parts[1].trimmed().toULongLong() * 1024 * 1024;  // MiB
        d.freeBytes = parts[2].trimmed().toULongLong() * 1024 * 1024;
        out.append(d);
    }
    return out;
}

QList<DeviceMemory> probeDevices() {
    QList<DeviceMemory> out = probeCuda();
    out.append(probeCpu());
    return out;
}

MemoryPlan planMemory(const lmw::engine::ModelInfo& info, int sessionLen, int quantPolicy, int batch,
                      const DeviceMemory& device) {
    MemoryPlan p;
    if (sessionLen <= 0) sessionLen = info.contextLength;
    batch = std::max(batch, 1);
    p.weights = info.weightBytes;
    // The engine's own sizing: whole blocks for the whole batch, in the chosen device's layout.
    const std::string backend = device.kind == QLatin1String("cpu") ? "cpu" : "cuda";
    p.kvCache = info.kvCacheBytes(sessionLen, quantPolicy, batch, backend);
    const uint64_t estimate = info.memoryNeeded(sessionLen, quantPolicy, batch);
    const uint64_t estimateKv = info.kvBytesPerToken(quantPolicy) * uint64_t(sessionLen) * uint64_t(batch);
    p.overhead = estimate > p.weights + estimateKv ? estimate - p.weights - estimateKv : 0;
    p.total = p.weights + p.kvCache + p.overhead;
    p.available = device.freeBytes;
    if (p.available == 0) return p;  // unknown: say nothing rather than guess
    p.fits = p.total <= p.available;
    const QString where = device.kind == QLatin1String("cuda") ? QObject::tr("GPU memory") : QObject::tr("RAM");
    if (!p.fits) {
        QString hint = quantPolicy == 0 ? QObject::tr(" Try a shorter session, int8/int4 KV cache, or a quantized model.")
                                        : QObject::tr(" Try a shorter session or a quantized model.");
        p.warning = QObject::tr("This will not fit: it needs %1 but only %2 of %3 is free.")
                        .arg(QString::fromStdString(formatBytes(p.total)), QString::fromStdString(formatBytes(p.available)),
                             where) +
                    hint;
    } else if (p.total > p.available * 0.9) {
        p.warning = QObject::tr("This only just fits in the free %1; other programs may push it out.").arg(where);
    }
    return p;
}

}  // namespace lmw::gui
