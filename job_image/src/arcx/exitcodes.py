"""Process exit codes: the contract between `arcx run` and the JobSet failure policy.

The operator's pod failure policy keys on these numbers, so they never change meaning.
"""

OK = 0
CRASH = 1
# sysexits.h EX_CONFIG: the input is wrong, retrying cannot help; the JobSet fails at once.
CONFIG_ERROR = 78
# sysexits.h EX_TEMPFAIL: stopped on SIGTERM after a clean cut; a restart resumes.
PREEMPTED = 75
