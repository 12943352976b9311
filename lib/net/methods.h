/* methods.h -- the full names of the RPC methods (DESIGN.md §3).
 *
 * A Request envelope names its method as "<package>.<Service>/<Method>", the
 * service and method names of proto/psfleet.proto. These constants are the one
 * place that spells them; psf_methods_check() compares them with the generated
 * service descriptors (psfleet__v1__parameter_server__descriptor, ...), and the
 * schema unit test runs it, so renaming an RPC in the .proto without changing its
 * constant here fails the build's tests instead of every caller at run time.
 * Constants (not functions) so that they can initialise static tables. */
#ifndef PSF_METHODS_H
#define PSF_METHODS_H

#include "lib/base/err.h"

#define PSF_SVC_PS "psfleet.v1.ParameterServer"
#define PSF_SVC_INFERENCE "psfleet.v1.Inference"
#define PSF_SVC_ADMIN "psfleet.v1.Admin"
#define PSF_SVC_REPL "psfleet.v1.Replication"

/* service ParameterServer */
#define PSF_M_REGISTER PSF_SVC_PS "/RegisterWorker"
#define PSF_M_PULL PSF_SVC_PS "/Pull"
#define PSF_M_PUSH PSF_SVC_PS "/Push"
#define PSF_M_CLOCK PSF_SVC_PS "/Clock"
#define PSF_M_SNAPSHOT PSF_SVC_PS "/Snapshot"
#define PSF_M_STATS PSF_SVC_PS "/Stats"
#define PSF_M_REDUCE PSF_SVC_PS "/Reduce"
#define PSF_M_REPORT PSF_SVC_PS "/Report"
#define PSF_M_BACKUP PSF_SVC_PS "/Backup"
#define PSF_M_ASSIGN PSF_SVC_PS "/Assign"
#define PSF_M_PUSH_PULL PSF_SVC_PS "/PushPull"
#define PSF_M_APPEND_SAMPLES PSF_SVC_PS "/AppendSamples"
#define PSF_M_FINE_TUNE PSF_SVC_PS "/FineTune"
/* service Inference */
#define PSF_M_PREDICT PSF_SVC_INFERENCE "/Predict"
#define PSF_M_PREDICT_BATCH PSF_SVC_INFERENCE "/PredictBatch"
#define PSF_M_MODEL_INFO PSF_SVC_INFERENCE "/ModelInfo"
#define PSF_M_INGEST PSF_SVC_INFERENCE "/Ingest"
/* service Admin */
#define PSF_M_HEALTH PSF_SVC_ADMIN "/Health"
#define PSF_M_STATUS PSF_SVC_ADMIN "/Status"
#define PSF_M_SHUTDOWN PSF_SVC_ADMIN "/Shutdown"
/* service Replication (between the ps nodes of a replicated fleet) */
#define PSF_M_REPLICATE PSF_SVC_REPL "/Replicate"
#define PSF_M_REPL_HEARTBEAT PSF_SVC_REPL "/Heartbeat"
#define PSF_M_REPL_VOTE PSF_SVC_REPL "/Vote"
#define PSF_M_REPL_JOIN PSF_SVC_REPL "/Join"
#define PSF_M_REPL_INSTALL PSF_SVC_REPL "/Install"

/* psf_methods_check verifies that every PSF_M_* names a method of the generated
 * service descriptors, and that every method of those services has a PSF_M_*
 * constant. Returns PSF_OK, or PSF_EPROTO with one log line per mismatch. */
PSF_NODISCARD psf_err psf_methods_check(void);

#endif
