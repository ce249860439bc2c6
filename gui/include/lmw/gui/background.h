#pragma once
// Runs work on the thread pool and hands its result to `done` on the GUI thread, unless `context`
// was destroyed meanwhile (the watcher dies with it and the result is dropped).
#include <QFutureWatcher>
#include <QObject>
#include <QtConcurrent/QtConcurrentRun>
#include <utility>

namespace lmw::gui {

template <class Work, class Done>
void runInBackground(QObject* context, Work work, Done done) {
    using R = decltype(work());
    auto* watcher = new QFutureWatcher<R>(context);
    QObject::connect(watcher, &QFutureWatcher<R>::finished, context, [watcher, done = std::move(done)]() mutable {
        done(watcher->result());
        watcher->deleteLater();
    });
    watcher->setFuture(QtConcurrent::run(std::move(work)));
}

}  // namespace lmw::gui
