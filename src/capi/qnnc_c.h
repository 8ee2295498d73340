/* C interface of qnnc, for bindings (python/qnnc uses it through ctypes). Every call returns 0
 * on success; on failure it returns non-zero and qnnc_last_error() says why. */
#ifndef QNNC_C_H
#define QNNC_C_H
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct qnnc_module qnnc_module;

/* Message of the last failed call on this thread ("" if none). */
const char *qnnc_last_error(void);

/* Compiles model ("builtin:NAME" or an .onnx path) into out_dir. input_shape may be NULL
 * (rank 0); precision is "fp32", "int8", "int4", ..., target "host", "rpi4" or "rpi5". */
int qnnc_compile(const char *model, const char *out_dir, const char *target, const char *precision,
                 const int64_t *input_shape, int rank, uint64_t seed);

/* The same with every option as a JSON object (NULL or "" = defaults); unknown keys are an
 * error. Keys: target, precision, input_shape [..], seed, calib_mode, calib_data,
 * calib_samples, percentile, global_scale, weight_scale, rounding, quantize_first_conv, quantize_dense, lowbit_edges,
 * skip_layers [..], knobs {"family": {"knob": value}}. */
int qnnc_compile_json(const char *model, const char *out_dir, const char *options_json);

int qnnc_module_load(const char *dir, qnnc_module **out);
void qnnc_module_free(qnnc_module *m);
int qnnc_module_set_threads(qnnc_module *m, int threads);
/* Shape of input / output i (N,C,H,W order): writes up to 8 dims, returns the rank in *rank. */
int qnnc_module_input_shape(qnnc_module *m, int i, int64_t *dims, int *rank);
int qnnc_module_output_shape(qnnc_module *m, int i, int64_t *dims, int *rank);
/* Runs on one float32 input; copies output 0 (float32) into out (out_len elements). */
int qnnc_module_run(qnnc_module *m, const float *in, int64_t in_len, float *out, int64_t out_len);
/* The module's graph.json text (valid until the module is freed). */
const char *qnnc_module_manifest(qnnc_module *m);

#ifdef __cplusplus
}
#endif
#endif
