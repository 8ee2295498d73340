// Minimal ONNX Runtime timing driver for bench/bench_qemu.py.
//
// Built with aarch64-linux-gnu-g++ and run under qemu-aarch64, it times ONNX Runtime's aarch64
// build (libonnxruntime.so from the PyPI wheel) the way `qnnc emulate` times a qnnc bundle.
// No ONNX Runtime header ships with the wheel, so the few C API entry points used here are
// declared below from the documented, append-only OrtApi layout: OrtGetApiBase()->GetApi(v)
// returns a table of function pointers whose slots never move between releases. Only slots
// from API version 1 are used, and the slot numbers are checked at run time where possible
// (GetApi must succeed; every call returns an OrtStatus, NULL on success).
//
// Usage: ort_bench LIB MODEL INPUT.f32 N,C,H,W INPUT_NAME OUTPUT_NAME THREADS REPEAT WARMUP
//                  [OUTPUT.f32 [JSON]]
// INPUT.f32 is raw little-endian float32 data; OUTPUT.f32 receives the first output's raw
// float32 data. Prints "median_ms=... min_ms=... max_ms=..." and writes them as JSON.

#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

struct OrtStatus;
struct OrtEnv;
struct OrtSession;
struct OrtSessionOptions;
struct OrtMemoryInfo;
struct OrtValue;
struct OrtTensorTypeAndShapeInfo;

struct OrtApiBase {
  const void *const *(*GetApi)(uint32_t version);
  const char *(*GetVersionString)();
};

// Slots of struct OrtApi (include/onnxruntime/core/session/onnxruntime_c_api.h, API version 1).
enum Slot {
  kGetErrorMessage = 2,
  kCreateEnv = 3,
  kCreateSession = 7,
  kRun = 9,
  kCreateSessionOptions = 10,
  kSetSessionExecutionMode = 13,
  kSetSessionLogSeverityLevel = 22,
  kSetSessionGraphOptimizationLevel = 23,
  kSetIntraOpNumThreads = 24,
  kSetInterOpNumThreads = 25,
  kCreateTensorWithDataAsOrtValue = 49,
  kGetTensorMutableData = 51,
  kGetTensorShapeElementCount = 64,
  kGetTensorTypeAndShape = 65,
  kCreateCpuMemoryInfo = 69,
};

constexpr uint32_t kApiVersion = 1;       // every slot above exists since version 1
constexpr int kLogError = 3;              // ORT_LOGGING_LEVEL_ERROR
constexpr int kSequential = 0;            // ORT_SEQUENTIAL
constexpr int kEnableAll = 99;            // ORT_ENABLE_ALL
constexpr int kArenaAllocator = 1;        // OrtArenaAllocator
constexpr int kMemTypeDefault = 0;        // OrtMemTypeDefault
constexpr int kFloat = 1;                 // ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT

const void *const *api = nullptr;

template <typename Fn>
Fn slot(Slot s) {
  return reinterpret_cast<Fn>(const_cast<void *>(api[s]));
}

[[noreturn]] void die(const std::string &msg) {
  std::fprintf(stderr, "ort_bench: %s\n", msg.c_str());
  std::exit(2);
}

void check(OrtStatus *status, const char *what) {
  if (!status) return;
  auto msg = slot<const char *(*)(const OrtStatus *)>(kGetErrorMessage)(status);
  die(std::string(what) + " failed: " + (msg ? msg : "(no message)"));
}

std::vector<int64_t> parse_shape(const std::string &text) {
  std::vector<int64_t> dims;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    dims.push_back(std::stoll(text.substr(pos, comma - pos)));
    pos = comma + 1;
  }
  return dims;
}

}  // namespace

int main(int argc, char **argv) {
  if (argc < 10 || argc > 12) {
    std::fprintf(stderr, "usage: %s LIB MODEL INPUT.f32 N,C,H,W INPUT_NAME OUTPUT_NAME THREADS REPEAT WARMUP "
                         "[OUTPUT.f32 [JSON]]\n", argv[0]);
    return 2;
  }
  const char *lib_path = argv[1], *model = argv[2], *input_path = argv[3];
  std::vector<int64_t> shape = parse_shape(argv[4]);
  const char *input_name = argv[5], *output_name = argv[6];
  int threads = std::atoi(argv[7]), repeat = std::atoi(argv[8]), warmup = std::atoi(argv[9]);
  const char *output_path = argc > 10 ? argv[10] : nullptr;
  const char *json_path = argc > 11 ? argv[11] : nullptr;
  if (threads < 1 || repeat < 1 || warmup < 0) die("THREADS and REPEAT must be >= 1, WARMUP >= 0");

  void *lib = dlopen(lib_path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) die(std::string("dlopen failed: ") + dlerror());
  auto get_base = reinterpret_cast<const OrtApiBase *(*)()>(dlsym(lib, "OrtGetApiBase"));
  if (!get_base) die("libonnxruntime has no OrtGetApiBase");
  const OrtApiBase *base = get_base();
  api = base->GetApi(kApiVersion);
  if (!api) die("GetApi(1) returned NULL");
  const char *version = base->GetVersionString();

  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);
  std::vector<float> input(count);
  FILE *f = std::fopen(input_path, "rb");
  if (!f) die(std::string("cannot open ") + input_path);
  size_t got = std::fread(input.data(), sizeof(float), count, f);
  std::fclose(f);
  if (got != count) die("input file holds fewer floats than the shape needs");

  OrtEnv *env = nullptr;
  check(slot<OrtStatus *(*)(int, const char *, OrtEnv **)>(kCreateEnv)(kLogError, "ort_bench", &env), "CreateEnv");
  OrtSessionOptions *so = nullptr;
  check(slot<OrtStatus *(*)(OrtSessionOptions **)>(kCreateSessionOptions)(&so), "CreateSessionOptions");
  using SetInt = OrtStatus *(*)(OrtSessionOptions *, int);
  check(slot<SetInt>(kSetIntraOpNumThreads)(so, threads), "SetIntraOpNumThreads");
  check(slot<SetInt>(kSetInterOpNumThreads)(so, 1), "SetInterOpNumThreads");
  check(slot<SetInt>(kSetSessionExecutionMode)(so, kSequential), "SetSessionExecutionMode");
  check(slot<SetInt>(kSetSessionGraphOptimizationLevel)(so, kEnableAll), "SetSessionGraphOptimizationLevel");
  check(slot<SetInt>(kSetSessionLogSeverityLevel)(so, kLogError), "SetSessionLogSeverityLevel");
  OrtSession *session = nullptr;
  check(slot<OrtStatus *(*)(const OrtEnv *, const char *, const OrtSessionOptions *, OrtSession **)>(kCreateSession)(
            env, model, so, &session),
        "CreateSession");

  OrtMemoryInfo *mem = nullptr;
  check(slot<OrtStatus *(*)(int, int, OrtMemoryInfo **)>(kCreateCpuMemoryInfo)(kArenaAllocator, kMemTypeDefault, &mem),
        "CreateCpuMemoryInfo");
  OrtValue *in_value = nullptr;
  check(slot<OrtStatus *(*)(const OrtMemoryInfo *, void *, size_t, const int64_t *, size_t, int, OrtValue **)>(
            kCreateTensorWithDataAsOrtValue)(mem, input.data(), count * sizeof(float), shape.data(), shape.size(),
                                             kFloat, &in_value),
        "CreateTensorWithDataAsOrtValue");

  using RunFn = OrtStatus *(*)(OrtSession *, const void *, const char *const *, const OrtValue *const *, size_t,
                               const char *const *, size_t, OrtValue **);
  auto run = slot<RunFn>(kRun);
  OrtValue *out_value = nullptr;  // outputs of earlier runs are leaked (a few KB each) until exit
  std::vector<double> samples;
  for (int i = 0; i < warmup + repeat; ++i) {
    out_value = nullptr;
    auto t0 = std::chrono::steady_clock::now();
    check(run(session, nullptr, &input_name, &in_value, 1, &output_name, 1, &out_value), "Run");
    auto t1 = std::chrono::steady_clock::now();
    if (i >= warmup) samples.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }

  if (output_path) {
    OrtTensorTypeAndShapeInfo *info = nullptr;
    check(slot<OrtStatus *(*)(const OrtValue *, OrtTensorTypeAndShapeInfo **)>(kGetTensorTypeAndShape)(out_value, &info),
          "GetTensorTypeAndShape");
    size_t n = 0;
    check(slot<OrtStatus *(*)(const OrtTensorTypeAndShapeInfo *, size_t *)>(kGetTensorShapeElementCount)(info, &n),
          "GetTensorShapeElementCount");
    void *data = nullptr;
    check(slot<OrtStatus *(*)(OrtValue *, void **)>(kGetTensorMutableData)(out_value, &data), "GetTensorMutableData");
    FILE *o = std::fopen(output_path, "wb");
    if (!o || std::fwrite(data, sizeof(float), n, o) != n) die(std::string("cannot write ") + output_path);
    std::fclose(o);
  }

  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  size_t m = sorted.size();
  double median = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
  std::printf("onnxruntime %s threads=%d median_ms=%.3f min_ms=%.3f max_ms=%.3f\n", version, threads, median,
              sorted.front(), sorted.back());
  if (json_path) {
    FILE *j = std::fopen(json_path, "w");
    if (!j) die(std::string("cannot write ") + json_path);
    std::fprintf(j, "{\"onnxruntime_version\": \"%s\", \"threads\": %d, \"repeat\": %d, \"warmup\": %d, "
                    "\"median_ms\": %.6f, \"min_ms\": %.6f, \"max_ms\": %.6f, \"samples_ms\": [",
                 version, threads, repeat, warmup, median, sorted.front(), sorted.back());
    for (size_t i = 0; i < samples.size(); ++i) std::fprintf(j, "%s%.6f", i ? ", " : "", samples[i]);
    std::fprintf(j, "]}\n");
    std::fclose(j);
  }
  std::fflush(stdout);
  std::_Exit(0);  // skip ORT's global teardown: nothing else to release before exit
}
