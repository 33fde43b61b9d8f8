"""Every name, label key and number the operator shares with Kubernetes and with `arcx run`.

One place per fact: rendering, status mapping, the CRD and the tests all read them here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

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
# Label keys are on the objects the operator creates (ConfigMap, JobSet, its Jobs and pods).
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
ENV_HOME = "HOME"
ENV_TMPDIR = "TMPDIR"

# --- the job pods' security context (Pod Security Standard "restricted") -----------------
# The image's non-root user (Dockerfile: useradd --uid 65532, USER 65532:65532).
JOB_USER_ID = 65532
JOB_GROUP_ID = 65532
# The root filesystem is read-only; these emptyDirs are where Python and JAX write (HOME
# holds ~/.cache). TMPDIR points at /var/tmp, which tempfile and XLA honour, instead of
# covering /tmp: the local test node runs pods as host processes that share the host's /tmp.
HOME_VOLUME = "arcx-home"
HOME_DIR = "/home/arcx"
TMP_VOLUME = "arcx-tmp"
TMP_DIR = "/var/tmp"
# The exit code `arcx run` uses for an invalid configuration (arcx.exitcodes.CONFIG_ERROR);
# a test pins the two together, this package must not import arcx.
CONFIG_ERROR_EXIT_CODE = 78
# arcx.exitcodes.PREEMPTED: stopped cleanly on SIGTERM; restarting resumes, so it is not counted.
PREEMPTED_EXIT_CODE = 75

# Names of the JobSet failure-policy rules (JobSet requires a name on each).
RULE_CONFIG_ERROR = "ConfigError"
RULE_PREEMPTION = "Preemption"
RULE_CRASH = "Crash"


class JobSetAction(StrEnum):
    """JobSet failurePolicy rule actions (jobset.x-k8s.io/v1alpha2 FailurePolicyAction)."""

    FAIL_JOBSET = "FailJobSet"
    RESTART_JOBSET = "RestartJobSet"
    RESTART_IGNORING_MAX = "RestartJobSetAndIgnoreMaxRestarts"


class JobSetCondition(StrEnum):
    """Condition types the JobSet controller sets on a JobSet."""

    COMPLETED = "Completed"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


RESTART_STRATEGY = "Recreate"
# batch/v1 Job: the pod failure policy's action, and the Job failure reason it produces.
POD_ACTION_FAIL_JOB = "FailJob"
JOB_REASON_POD_FAILURE_POLICY = "PodFailurePolicy"
# The Job controller's failure messages (k8s.io/kubernetes pkg/controller/job), as regexps.
JOB_MESSAGE_EXIT_CODE = "failed with exit code {code} matching FailJob rule"
JOB_MESSAGE_DISRUPTION = "has condition DisruptionTarget matching FailJob rule"
POD_CONDITION_DISRUPTION = "DisruptionTarget"


# --- status of an ArcExtractionJob ------------------------------------------------------
class Phase(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"


TERMINAL_PHASES = (Phase.SUCCEEDED, Phase.FAILED)


class ConditionType(StrEnum):
    """Condition types on the resource. Exactly one phase condition is True at a time."""

    CREATED = "Created"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"
    OUTPUT_MOUNTED = "OutputMounted"
    STORE_READABLE = "StoreReadable"


PHASE_CONDITIONS: dict[Phase, ConditionType] = {
    Phase.RUNNING: ConditionType.RUNNING,
    Phase.SUCCEEDED: ConditionType.SUCCEEDED,
    Phase.FAILED: ConditionType.FAILED,
    Phase.SUSPENDED: ConditionType.SUSPENDED,
}


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


# The API server's limit on an Event's message.
MAX_EVENT_MESSAGE = 1024


@dataclass(frozen=True)
class Reason:
    """A condition/Event reason with its message, as JobSet's pkg/constants pairs them.

    ``message`` may hold ``{placeholders}``; ``text(**values)`` fills them in."""

    name: str
    message: str

    def text(self, **values: object) -> str:
        return self.message.format(**values) if values else self.message


# Phase reasons (status.py); a message of "" means the caller supplies it (it comes from
# the JobSet, the failed pod or the error at hand).
CREATING = Reason("Creating", "creating the ConfigMap and JobSet")
COMPLETED = Reason("Completed", "all slices finished")
CONFIG_ERROR = Reason("ConfigError", "")
JOBSET_FAILED = Reason("JobSetFailed", "the JobSet failed")
SUSPENDED_BY_SPEC = Reason("Suspended", "suspended by spec.suspend")
SUSPENDED_JOBSET = Reason("Suspended", "the JobSet is suspended")
QUEUED = Reason("Queued", "waiting for admission by Kueue queue {queue}")
RUNNING = Reason("Running", "{ready} slice(s) running or done")
RESTARTING = Reason("Restarting", "restart {restarts}: waiting for the pods")
PODS_PENDING = Reason("PodsPending", "waiting for the pods of every slice to start")
INVALID_SPEC = Reason("InvalidSpec", "")
POLICY_VIOLATION = Reason("PolicyViolation", "")
NAME_CLASH = Reason(
    "InvalidSpec",
    "a {kind} named {name} already exists and is not owned by this resource; "
    "delete it or rename the ArcExtractionJob",
)
# Condition Created.
JOBSET_CREATED = Reason("JobSetCreated", "ConfigMap and JobSet exist")
# An inactive phase condition's reason is "Not" + the phase.
NOT_PREFIX = "Not"
# Condition OutputMounted (podspec.output_condition).
OUTPUT_MOUNTED = Reason("Mounted", "output.uri {uri} is on {where}")
OUTPUT_OBJECT_STORE = Reason("ObjectStore", "output.uri {uri} is an object store")
OUTPUT_NOT_MOUNTED = Reason("OutputNotMounted", "")
OUTPUT_READ_ONLY = Reason(
    "OutputReadOnly",
    "output.uri {uri} is on {where} read-only; the job cannot write its output: "
    "set readOnly: false on that mount",
)
# Condition StoreReadable (handlers: the progress read).
STORE_READ = Reason("StoreRead", "progress read from {uri}")
STORE_NOT_YET = Reason("NotRead", "the output store has not been read yet")
STORE_MALFORMED = Reason("MalformedStore", "")
STORE_UNREADABLE = Reason("StoreUnreadable", "")


def config_map_name(job_name: str) -> str:
    return f"{job_name}-config"


def jobset_name(job_name: str) -> str:
    return job_name
