"""`arcx run`: one process of a (multi-host) extraction job.

Order of work, and what each failure means:

1. config, pod environment, model path, dataset       -> exit 78 (CONFIG_ERROR) when wrong
2. jax.distributed, mesh, model weights               -> exit 78 when the model cannot load
3. manifest.json (host 0 creates it or checks it)     -> exit 78 for a store of another job
4. for each unit of this slice, in plan order: skip it when COMMITTED; else batches ->
   forward -> every host hands its part to a writer thread and goes on with the next
   unit; when that unit's batches are done -> barrier (carrying each part's size and
   sha256, or a write error) -> host 0 writes predictions and the marker. SIGTERM is
   checked (collectively) before every batch -> the written unit is committed, the one in
   progress abandoned (never half-committed) -> exit 75 (PREEMPTED).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from arcx_store.backends import BadStoreURI, Storage, StorageError, open_storage
from arcx_store.dtypes import numpy_dtype
from arcx_store.parts import SequenceRows, assemble_part

from arcx import exitcodes
from arcx.config import ConfigError, JobConfig
from arcx.runner import activation_stats, batching, distributed, manifest, sync
from arcx.runner.committer import Committer, UnitSummary
from arcx.runner.compile_cache import configure_compilation_cache
from arcx.runner.device_inputs import DeviceInputs, build_inputs
from arcx.runner.packing import BatchPlanner
from arcx.runner.plan import Unit, plan_units, units_for_slice
from arcx.runner.progress import EventRecorder, Progress, log_event
from arcx.runner.work import PromptMaker, Sequence, UnitWork


class Preempted(Exception):
    """SIGTERM arrived; the current unit was abandoned."""


@dataclass
class RunStats:
    units_done: int = 0
    units_skipped: int = 0
    tasks: int = 0
    sequences: int = 0
    tokens_kept: int = 0
    tokens_real: int = 0
    tokens_padded: int = 0
    skipped: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    bytes_written: int = 0
    write_seconds: float = 0.0

    @property
    def padding_fraction(self) -> float:
        return 1.0 - self.tokens_real / self.tokens_padded if self.tokens_padded else 0.0


class StopFlag:
    """SIGTERM (and SIGINT) handling.

    While starting up nothing is in flight, so a signal exits at once with PREEMPTED. Once
    work starts, it only sets a flag that the processes read together between batches. It
    is installed again after ``jax.distributed.initialize``, whose preemption notifier
    otherwise takes SIGTERM over.
    """

    def __init__(self) -> None:
        self.event = threading.Event()
        self.working = False

    def install(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            if not self.working:
                os._exit(exitcodes.PREEMPTED)
            self.event.set()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def requested(self) -> bool:
        """True once SIGTERM (or SIGINT) arrived."""
        return self.event.is_set()


# -- startup checks (before any JAX backend exists) ------------------------------------


def check_model_source(source: str) -> None:
    if source.startswith(("hf://", "gs://")):
        return
    path = Path(source.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"model.source: {path} is not a directory (expected a Hugging Face model folder)"
        )
    if not (path / "config.json").exists():
        raise ConfigError(
            f"model.source: {path} has no config.json; is it a Hugging Face model folder?"
        )


def open_dataset(config: JobConfig) -> Any:
    from arcx.tasks.resolve import open_task_source

    ds = config.dataset
    try:
        return open_task_source(ds.source, max_tasks=ds.max_tasks, seed=ds.seed)
    except ConfigError:
        raise
    except Exception as err:  # the data layer's own errors; any of them means a bad source
        raise ConfigError(f"dataset.source: cannot read {ds.source!r}: {err}") from None


def check_some_sequence_fits(stats: RunStats, max_seq_len: int) -> None:
    """A run that skipped every sequence (each longer than maxSeqLen) extracted nothing: 78."""
    if stats.sequences or not stats.skipped:
        return
    lengths = [s["length"] for s in stats.skipped if s.get("length")]
    if not lengths:  # no prompt could be built at all
        raise ConfigError(f"prompt: every sequence was skipped ({stats.skipped[0]['reason']})")
    raise ConfigError(
        f"batching.maxSeqLen: all {len(stats.skipped)} sequences were skipped, the shortest "
        f"being {min(lengths)} tokens > maxSeqLen {max_seq_len}, so nothing was extracted; "
        "raise batching.maxSeqLen (and tokensPerBatch) and write to a new output.uri"
    )


def part_annotations(seq: Sequence, keep: np.ndarray) -> dict[str, Any]:
    """A sequence's annotation tensors for its kept positions, and its augmentation."""
    tokens = None
    if seq.annotations is not None:
        ann = seq.annotations.take(keep)
        tokens = {f: getattr(ann, f) for f in ann.FIELDS}
    return {
        "annotations": tokens,
        "dihedral": seq.augmentation.dihedral,
        "colour_perm": tuple(seq.augmentation.colors),
    }


# -- the job ---------------------------------------------------------------------------


class Runner:
    def __init__(
        self,
        config: JobConfig,
        storage: Storage,
        store: Any,
        cluster: distributed.ClusterEnv,
        stop: StopFlag,
        *,
        verify_on_resume: bool = False,
    ) -> None:
        self.config = config
        self.storage = storage
        self.store = store
        self.cluster = cluster
        self.stop = stop
        self.stats = RunStats()
        self.is_host0 = cluster.process_id == 0
        self.verify_on_resume = verify_on_resume
        self.committer = Committer(
            storage,
            process_id=cluster.process_id,
            write_predictions=(config.extraction.scores or config.generation.max_new_tokens > 0),
            on_written=self._written,
            on_committed=self._committed,
            pause_s=float(os.environ.get("ARCX_COMMIT_PAUSE_S", "0") or 0),
        )

    @property
    def storage(self) -> Storage:
        return self._storage

    @storage.setter
    def storage(self, value: Storage) -> None:
        # One store for the runner and its committer (bench/pipeline.py swaps it per pass).
        self._storage = value
        if "committer" in self.__dict__:
            self.committer.storage = value

    def _written(self, nbytes: int, seconds: float) -> None:
        self.stats.bytes_written += nbytes
        self.stats.write_seconds += seconds

    def _committed(self, unit: int) -> None:
        self.progress.unit_committed(unit, paddingFraction=round(self.stats.padding_fraction, 4))

    # startup ---------------------------------------------------------------------------

    def load(self) -> None:
        import jax

        from arcx.model import ModelLoadError, load_model, make_mesh

        cfg = self.config
        configure_compilation_cache(cfg.engine.compilation_cache)  # before the first compile
        n_dev = len(jax.devices())
        if n_dev % cfg.mesh.model:
            raise ConfigError(
                f"mesh.model: {cfg.mesh.model} does not divide the slice's {n_dev} devices"
            )
        self.mesh = make_mesh(cfg.mesh.model)
        try:
            self.loaded = load_model(cfg.model.source, mesh=self.mesh, dtype=cfg.model.dtype)
        except ModelLoadError as err:
            raise ConfigError(f"model.source: {err}") from None
        from arcx.runner.engine import Engine

        try:
            self.engine = Engine(
                self.loaded,
                self.mesh,
                sites=list(cfg.extraction.sites),
                layers=list(cfg.extraction.layers),
                out_dtype=cfg.extraction.dtype,
                max_new_tokens=cfg.generation.max_new_tokens,
                scoring=cfg.extraction.scores,
                attention=cfg.engine.attention,
            )
        except ValueError as err:  # a layer outside the model
            raise ConfigError(f"extraction.layers: {err}") from None
        self.prompts = PromptMaker(cfg, self.loaded.tokenizer)
        # Generation reads one prompt per row, so a job that generates runs unpacked.
        self.packed = bool(
            cfg.engine.packing and self.engine.packing and cfg.generation.max_new_tokens == 0
        )
        self.planner = BatchPlanner.of(cfg, packed=self.packed)
        mc = self.loaded.config
        self.plan = plan_units(self.store.num_tasks, cfg.output.unit_size)
        self.manifest = manifest.build_manifest(
            cfg,
            dataset_fingerprint=self.store.fingerprint,
            plan=self.plan,
            model=manifest.ModelFacts(
                mc.hidden_size,
                mc.num_hidden_layers,
                mc.vocab_size,
                tuple(self.loaded.tokenizer.all_special_ids),
            ),
        )

    def ensure_manifest(self) -> None:
        """Host 0 creates or checks the manifest; every host learns the outcome."""
        status, message = 0, ""
        if self.is_host0:
            try:
                manifest.ensure_manifest(self.storage, self.manifest)
            except manifest.StoreMismatch as err:
                status, message = 1, str(err)
            except StorageError as err:
                status, message = 2, str(err)
        status = sync.from_host0(status)
        if status == 1:
            raise ConfigError(message or f"output.uri: {self.storage.uri} belongs to another job")
        if status == 2:
            raise StorageError(message or f"output.uri: {self.storage.uri} could not be written")

    # the loop --------------------------------------------------------------------------

    def run(self) -> RunStats:
        started = time.monotonic()
        slices = self.config.parallelism.slices
        units = units_for_slice(self.plan, self.cluster.slice_index, slices)
        done_flags = self.committer.committed_flags(
            [u.index for u in units], full=self.verify_on_resume
        )
        todo = [u for u, done in zip(units, done_flags, strict=True) if not done]
        self.stats.units_skipped = len(units) - len(todo)
        # Host 0 keeps its events in the store for `arcx report` (one file per attempt).
        recorder = (
            EventRecorder(
                self.storage, f"slice{self.cluster.slice_index:03d}-{time.time_ns():020d}"
            )
            if self.is_host0
            else None
        )
        self.progress = Progress(
            units_total=len(units),
            units_done=len(units) - len(todo),
            enabled=self.is_host0,
            recorder=recorder,
        )
        if self.is_host0:
            start_fields = dict(
                slice=self.cluster.slice_index,
                processes=self.cluster.num_processes,
                devices=int(self.mesh.devices.size),
                unitsInSlice=len(units),
                unitsToDo=len(todo),
                unitsAlreadyCommitted=self.stats.units_skipped,
                unitsRedone={str(u): why for u, why in sorted(self.committer.redone.items())},
            )
            log_event("start", **start_fields)
            if recorder is not None:
                recorder.record("start", **start_fields)
        try:
            self._run_units(todo)
        finally:
            self.committer.close()
        self.progress.close()  # ends the bar; the last events reach the store
        self.stats.seconds = time.monotonic() - started
        return self.stats

    def _run_units(self, todo: list[Unit]) -> None:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="arcx-prompts") as pool:
            ahead: Future[UnitWork] | None = (
                pool.submit(self.prompts.unit_work, self.store, todo[0]) if todo else None
            )
            for i, unit in enumerate(todo):
                assert ahead is not None
                work = ahead.result()
                if i == 0:
                    self._write_plan(work)
                ahead = (
                    pool.submit(self.prompts.unit_work, self.store, todo[i + 1])
                    if i + 1 < len(todo)
                    else None
                )
                self._run_unit(unit, work)  # commits the previous unit on the way
                self.stats.units_done += 1
            self.committer.finish()

    def _write_plan(self, work: UnitWork) -> None:
        """Process 0 of slice 0 prices the job from the first unit it built (no second
        tokenisation) and writes plan.json for the operator's status, unless an earlier
        attempt did. A store that refuses it costs the job nothing: the units still run."""
        if not (self.is_host0 and self.cluster.slice_index == 0):
            return
        from dataclasses import replace

        from arcx_store.plan import write_plan

        from arcx.planning.collect import job_shape
        from arcx.planning.from_run import model_shape, run_plan_summary

        plan = run_plan_summary(
            work,
            rule=self.config.extraction.positions,
            tasks_total=self.store.num_tasks,
            shape=model_shape(self.loaded.config),
            job=replace(job_shape(self.config), packed=self.packed),
            batches=lambda lengths: self.planner.batches(lengths, self.engine.n_shards),
        )
        try:
            written = write_plan(self.storage, plan)
        except StorageError as err:
            log_event("plan-not-written", error=str(err))
            return
        if written:
            log_event("plan", **plan.to_json())

    def _run_unit(self, unit: Unit, work: UnitWork) -> None:
        cfg = self.config
        eng = self.engine
        seqs = work.sequences
        if self.is_host0:
            for sk in work.skipped:
                log_event("sequence-skipped", unit=unit.index, **sk)
        keep = [
            batching.kept_positions(cfg.extraction.positions, s.length, s.prompt_len, s.answer_span)
            for s in seqs
        ]
        batches = self.planner.batches([s.length for s in seqs], eng.n_shards)
        pieces: dict[int, dict[str, np.ndarray]] = {}
        predictions: dict[int, dict[str, Any]] = {}
        self.unit_stats = activation_stats.UnitStats()
        pending = None
        for batch in batches:
            self._check_stop()
            nxt = eng.dispatch(self._inputs(batch, seqs, keep))
            if pending is not None:
                self._collect(eng.fetch(pending), seqs, pieces, predictions)
            pending = nxt
        if pending is not None:
            self._collect(eng.fetch(pending), seqs, pieces, predictions)
        # The previous unit's part has been uploading while this unit computed: commit it
        # now, then hand this unit's part to the writer.
        self.committer.finish()
        self._write_part(unit, work, keep, pieces, predictions)
        self._check_stop()

    def _check_stop(self) -> None:
        """Collective: every process learns whether any got SIGTERM. A unit whose part is
        already written is committed first; the unit in progress is abandoned."""
        if sync.any_flag(self.stop.requested()):
            self.committer.finish()
            self.progress.close()
            raise Preempted()

    def _inputs(
        self, batch: batching.Batch, seqs: list[Sequence], keep: list[np.ndarray]
    ) -> DeviceInputs:
        inputs = build_inputs(
            batch,
            seqs,
            keep,
            pad_token_id=self.loaded.pad_token_id,
            scoring=self.engine.scoring,
            generation=self.config.generation.max_new_tokens > 0,
        )
        self.stats.tokens_real += inputs.real_tokens
        self.stats.tokens_padded += inputs.padded_tokens
        return inputs

    def _collect(
        self,
        fetched: Any,
        seqs: list[Sequence],
        pieces: dict[int, dict[str, np.ndarray]],
        predictions: dict[int, dict[str, Any]],
    ) -> None:
        for shard, by_name in (fetched.stats or {}).items():
            for name, arrays in by_name.items():
                counts = fetched.inputs.gather.seq_counts[shard]
                self.unit_stats.add(name, activation_stats.host_moments(arrays, counts))
        for shard, arrays in fetched.shards.items():
            pos = 0
            for seq, n in fetched.inputs.gather.seq_counts[shard]:
                pieces[seq] = {k: v[pos : pos + n] for k, v in arrays.items()}
                pos += n
        if not self.is_host0:
            return
        guesses = {}
        if fetched.argmax is not None:
            guesses = {
                a.seq: fetched.argmax[a.row, a.offset : a.offset + a.count]
                for a in fetched.inputs.answers
            }
        for row, segments in enumerate(fetched.inputs.batch.rows):
            for seg in segments:
                guess = guesses.get(seg.seq)
                self._predict(seg.seq, seqs[seg.seq], guess, fetched, row, predictions)

    def _predict(
        self,
        i: int,
        s: Sequence,
        guess: np.ndarray | None,
        fetched: Any,
        row: int,
        predictions: dict[int, dict[str, Any]],
    ) -> None:
        """Sequence ``i``'s prediction row: the teacher-forced guess and/or the generated one."""
        tf = None
        if guess is not None and s.answer_span:
            a0, a1 = s.answer_span
            tf = self.prompts.score(s, [int(t) for t in guess])
            tf["correct"] = bool(np.array_equal(guess, s.input_ids[a0:a1]))
            tf["mode"] = "teacher-forcing"
        if fetched.generated is not None:
            out = self.prompts.score(s, [int(t) for t in fetched.generated[row]])
            out["mode"] = "generation"
            if tf is not None:
                out["teacherForcedCorrect"] = tf["correct"]
            predictions[i] = out
        elif tf is not None:
            predictions[i] = tf

    def _write_part(
        self,
        unit: Unit,
        work: UnitWork,
        keep: list[np.ndarray],
        pieces: dict[int, dict[str, np.ndarray]],
        predictions: dict[int, dict[str, Any]],
    ) -> None:
        """Assemble this host's part and hand it to the committer, which writes it in the
        background and commits it at the next ``finish``."""
        seqs = work.sequences
        rows = [
            SequenceRows(
                seqs[i].task_id,
                seqs[i].test_index,
                seqs[i].input_ids[keep[i]],
                pieces[i],
                **part_annotations(seqs[i], keep[i]),
            )
            for i in sorted(pieces)
        ]
        tensors, meta = assemble_part(
            rows,
            tensor_names=self.engine.keys,
            d_model=self.loaded.config.hidden_size,
            dtype=numpy_dtype(self.config.extraction.dtype),
            metadata={
                "unit": str(unit.index),
                "host": str(self.cluster.process_id),
                "positions": self.config.extraction.positions,
                "dtype": self.config.extraction.dtype,
            },
        )
        if self.engine.stats:
            order = sorted(pieces)
            tensors.update(
                self.unit_stats.part_tensors(
                    self.engine.keys,
                    self.loaded.config.hidden_size,
                    order,
                    [len(keep[i]) for i in order],
                )
            )
        self.unit_stats = activation_stats.UnitStats()
        self.stats.tasks += work.num_tasks
        self.stats.sequences += len(seqs)
        self.stats.tokens_kept += sum(len(k) for k in keep)
        self.stats.skipped += work.skipped
        self.progress.add_tokens(
            work.num_tasks,
            sum(s.length for s in seqs),
            unit=unit.index,
            real_total=self.stats.tokens_real,
            padded_total=self.stats.tokens_padded,
        )
        summary = UnitSummary(
            unit.index,
            num_tasks=work.num_tasks,
            num_sequences=len(seqs),
            num_tokens=sum(len(k) for k in keep),
            skipped=work.skipped,
        )
        self.committer.submit(summary, tensors, meta, predictions, owned=self.engine.owned)


def run_job(
    config: JobConfig,
    *,
    environ: dict[str, str] | None = None,
    verify_on_resume: bool = False,
) -> int:
    """Run this process's share of the job; returns an exit code from arcx.exitcodes."""
    env = dict(os.environ if environ is None else environ)
    # The flag's twin for pods and tests: a full sha256 check of committed units at resume.
    verify_on_resume = verify_on_resume or env.get("ARCX_VERIFY_ON_RESUME", "") == "1"
    stop = StopFlag()
    stop.install()
    cluster: distributed.ClusterEnv | None = None
    try:
        cluster = distributed.read_cluster_env(
            env, slices=config.parallelism.slices, tpu=distributed.tpu_present(env)
        )
        check_model_source(config.model.source)
        store = open_dataset(config)
        try:
            storage = open_storage(config.output.uri)
        except BadStoreURI as err:
            raise ConfigError(f"output.uri: {err}") from None
        storage.check_reachable()
        distributed.initialize(cluster)
        stop.install()
        runner = Runner(config, storage, store, cluster, stop, verify_on_resume=verify_on_resume)
        runner.load()
        runner.ensure_manifest()
        stop.working = True
        stats = runner.run()
        check_some_sequence_fits(stats, config.batching.max_seq_len)
    except ConfigError as err:
        print(f"arcx run: configuration error: {err}", file=sys.stderr)
        return exitcodes.CONFIG_ERROR
    except Preempted:
        log_event("preempted", process=cluster.process_id if cluster else 0)
        print(
            "arcx run: stopped on SIGTERM; committed units are kept, a restart resumes",
            file=sys.stderr,
        )
        if cluster:
            distributed.shutdown(cluster)
        return exitcodes.PREEMPTED
    except StorageError as err:
        print(f"arcx run: storage error: {err}", file=sys.stderr)
        return exitcodes.CRASH
    if cluster.process_id == 0:
        log_event(
            "done",
            unitsRun=stats.units_done,
            unitsAlreadyCommitted=stats.units_skipped,
            tasks=stats.tasks,
            sequences=stats.sequences,
            sequencesSkipped=len(stats.skipped),
            tokensKept=stats.tokens_kept,
            paddingFraction=round(stats.padding_fraction, 4),
            seconds=round(stats.seconds, 2),
        )
    distributed.shutdown(cluster)
    return exitcodes.OK
