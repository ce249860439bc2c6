// The CUDA backend is a module (liblmw_cuda.so) the engine loads when asked for: when it does not
// load (here: LMW_CUDA_MODULE names a file that is not there, as on a machine without libcudart),
// "cuda" fails with the loader's reason, "auto" is the CPU, and the version facts say why.
#include <QTest>

#include <cstdlib>

#include "backend/cuda_module.h"
#include "lmw/error.h"
#include "lmw/version.h"

using namespace lmw;
using namespace lmw::engine;

class TestCudaModule : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() { qputenv("LMW_CUDA_MODULE", "/nonexistent/liblmw_cuda.so"); }

    void missingModuleMeansCpu() {
        std::string why;
        QVERIFY(cudaModule(&why) == nullptr);
        QVERIFY(!cudaAvailable());
#ifdef LMW_HAVE_CUDA
        QVERIFY2(why.find("/nonexistent/liblmw_cuda.so") != std::string::npos, why.c_str());
#else
        QCOMPARE(why, std::string("this build has no CUDA backend"));
#endif
        try {
            createBackend("cuda", 1);
            QFAIL("a CUDA backend without its module");
        } catch (const Error& e) {
            QCOMPARE(e.code(), ErrorCode::Unsupported);
            QCOMPARE(std::string(e.what()), why);
        }
        QCOMPARE(createBackend("auto", 1)->deviceInfo().backend, std::string("cpu"));
    }

    void versionFactsSayWhy() {
        const auto facts = versionFacts();
        QCOMPARE(facts.front().first, std::string("LM Workbench"));
        QCOMPARE(facts.front().second, std::string(LMW_VERSION));
        QCOMPARE(facts.size(), size_t(2));
        QCOMPARE(facts[1].first, std::string("CUDA backend"));
        QVERIFY(facts[1].second.find("not available") == 0);
        const std::string text = versionText("lmw", {{"Qt", "6.4.2"}});
        QCOMPARE(text.substr(0, text.find('\n')), std::string("lmw " LMW_VERSION));
        QVERIFY(text.find("\nQt: 6.4.2\nCUDA backend: not available") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestCudaModule)
#include "test_cuda_module.moc"
