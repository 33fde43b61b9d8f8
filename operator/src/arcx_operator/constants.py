"""Every name, label key and number the operator shares with Kubernetes and with `arcx run`.

One place per fact: rendering, status mapping, the CRD and the tests all read them here.
"""

from __future__ import annotations

# --- the custom resource ---------------------------------------------------------------
GROUP = "arcx.dev"
VERSION = "v1alpha1"
KIND = "ArcExtractionJob"
PLURAL = "arcextractionjobs"
SINGULAR = "arcextractionjob"
SHORT_NAMES = ("aej",)
CATEGORIES = ("arcx",)
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"

# The longest resource name: pod hostnames are "<name>-slice-<job>-<pod>" and must stay
# within the 63-character DNS label limit, with room for 4-digit indexes.
MAX_NAME_LENGTH = 40

# --- JobSet (jobset.x-k8s.io/v1alpha2) --------------------------------------------------
JOBSET_GROUP = "jobset.x-k8s.io"
JOBSET_VERSION = "v1alpha2"
JOBSET_PLURAL = "jobsets"
JOBSET_API_VERSION = f"{JOBSET_GROUP}/{JOBSET_VERSION}"
REPLICATED_JOB = "slice"
JOBSET_NAME_LABEL = "jobset.sigs.k8s.io/jobset-name"
JOB_INDEX_LABEL = "jobset.sigs.k8s.io/job-index"
EXCLUSIVE_TOPOLOGY_ANNOTATION = "alpha.jobset.sigs.k8s.io/exclusive-topology"
COMPLETION_INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"

# --- labels the operator puts on what it creates ----------------------------------------
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "arcx-operator"
JOB_NAME_LABEL = "arcx.dev/job-name"

# --- GKE and TPU ------------------------------------------------------------------------
TPU_ACCELERATOR_SELECTOR = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY_SELECTOR = "cloud.google.com/gke-tpu-topology"
SPOT_SELECTOR = "cloud.google.com/gke-spot"
NODE_POOL_LABEL = "cloud.google.com/gke-nodepool"
TPU_RESOURCE = "google.com/tpu"

# --- Kueue ------------------------------------------------------------------------------
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"

# --- the pod contract with `arcx run` ---------------------------------------------------
CONTAINER_NAME = "arcx"
CONFIG_VOLUME = "job-config"
CONFIG_DIR = "/etc/arcx"
CONFIG_FILE = "job.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"
COORDINATOR_PORT = 8476
ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "JAX_PROCESS_ID"
ENV_SLICE_INDEX = "ARCX_SLICE_INDEX"
# The exit code `arcx run` uses for an invalid configuration (arcx.exitcodes.CONFIG_ERROR);
# a test pins the two together, this package must not import arcx.
CONFIG_ERROR_EXIT_CODE = 78
# arcx.exitcodes.PREEMPTED: stopped cleanly on SIGTERM; restarting resumes, so it is not counted.
PREEMPTED_EXIT_CODE = 75

# Names of the JobSet failure-policy rules (JobSet requires a name on each).
RULE_CONFIG_ERROR = "ConfigError"
RULE_PREEMPTION = "Preemption"
RULE_CRASH = "Crash"


def config_map_name(job_name: str) -> str:
    return f"{job_name}-config"


def jobset_name(job_name: str) -> str:
    return job_name
