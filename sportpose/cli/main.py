"""The ``sportpose`` command line: a plain table of commands. It parses, then calls; nothing else.

Errors a user can fix (a bad spec key, an unreadable file) print one line naming the file and the key and
exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from sportpose.errors import DataError, SpecError



def _add_spec_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="experiment spec (YAML)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. -o train.stages.main.epochs=2 (repeatable)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def cmd_train(args: argparse.Namespace) -> int:
    from sportpose.spec.experiment import load_spec

    spec = load_spec(args.spec, args.override)  # validated completely before anything starts
    from sportpose.pipelines.train import run_pipeline
    from sportpose.platform.runtime import init_ray

    init_ray(args.address)
    result = run_pipeline(spec, resume=args.resume)
    _print_summary(result)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from sportpose.pipelines.tour import run_tour, summary
    from sportpose.platform.runtime import init_ray

    init_ray(args.address)
    result = run_tour(overrides={"multistream": args.multistream, "stsp": args.stsp, "sweep": args.sweep})
    print()
    print(summary(result))
    return 0


def _print_summary(result) -> None:
    from sportpose.registry import tracking

    ev = result.evaluation
    print()
    print(f"== {result.spec.name}: finished in {result.seconds / 60:.1f} min ==")
    if ev:
        print(f"on held-out {ev['split']} clips ({ev['samples']} samples; boxes: {ev['boxes']}, flip test: "
              f"{ev['flip_test']}, seed {ev['seed']}):")
        if "mpjpe" in ev:
            print(f"  MPJPE    {ev['mpjpe']:7.1f} mm   (mean-pose baseline {ev['mpjpe_mean_pose']:.1f} mm)")
            print(f"  P-MPJPE  {ev['p_mpjpe']:7.1f} mm   PCK3D {ev['pck3d']:.1f}   AUC {ev['auc3d']:.1f}")
            print(f"  TS       {ev['ts']:7.2f} mm/frame²   (same model without TMP {ev['ts_no_tmp']:.2f})")
            if "epe_err_px" in ev:
                print(f"  EPE 2D   {ev['epe_err_px']:7.2f} px mean keypoint error on {ev['crop_px']} px crops "
                      f"(what the lifter reads)")
        else:
            print(f"  PCKh@{result.spec.evaluate.pckh_alpha}  trained {ev['pckh']:6.1f}   untrained {ev['pckh_untrained']:6.1f}"
                  f"   gain {ev['pckh'] - ev['pckh_untrained']:+6.1f} points")
            if "ap" in ev:
                groups = "  ".join(f"{k} {v:.1f}" for k, v in ev["ap_groups"].items())
                print(f"  AP       trained {ev['ap']:6.1f}   untrained {ev['ap_untrained']:6.1f}"
                      f"   gain {ev['ap'] - ev['ap_untrained']:+6.1f} points")
                print(f"  AP per group: {groups}")
    if result.promotion:
        p = result.promotion
        print(f"registered: models:/{p.name}/{p.version} (alias candidate{', champion' if p.promoted else ''}: {p.reason})")
    print(f"MLflow parent run: {result.parent_run_id}")
    print(f"outputs:   {result.output_dir}")
    uri = tracking.tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"MLflow UI: {uri}")
    else:
        print(f"MLflow UI: mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000")


def cmd_registry(args: argparse.Namespace) -> int:
    from sportpose.registry import tracking

    if args.action == "list":
        rows = tracking.registry_rows()
        if not rows:
            print(f"no registered models in {tracking.tracking_uri()}")
            return 0
        cols = ("name", "version", "aliases", "metric", "created", "run_id")
        widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
        print("  ".join(c.ljust(widths[c]) for c in cols))
        for r in rows:
            print("  ".join(r[c].ljust(widths[c]) for c in cols))
        return 0
    if not args.name or not args.version:
        raise SpecError("registry promote", "needs NAME and VERSION, e.g. sportpose registry promote sportpose-simplebaseline 3")
    tracking.promote(args.name, args.version, args.alias)
    print(f"{args.name}: alias {args.alias} -> version {args.version}")
    return 0


Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]


def _train_args(p: argparse.ArgumentParser) -> None:
    _add_spec_args(p)
    p.add_argument("--resume", nargs="?", const="refuse-changed", default=False, choices=["refuse-changed", "rerun-changed"],
                   help="continue this spec's last run: skip finished stages, continue an unfinished one from its "
                        "checkpoint; a changed setting of a finished stage is refused, or retrained with "
                        "--resume=rerun-changed")


def _demo_args(p: argparse.ArgumentParser) -> None:
    for name, spec in (("multistream", "experiments/tour/multistream.yaml"), ("stsp", "experiments/tour/stsp.yaml"),
                       ("sweep", "experiments/tour/fusion_weights.yaml")):
        p.add_argument(f"--{name}", action="append", default=[], metavar="KEY=VALUE",
                       help=f"override a key of {spec} (repeatable)")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def _registry_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["list", "promote"])
    p.add_argument("name", nargs="?", help="registered model (promote)")
    p.add_argument("version", nargs="?", help="model version (promote)")
    p.add_argument("--alias", default="champion", help="alias to move (promote; default champion)")


# ---- sportpose data synth|inspect|... and sportpose eval posetrack -------------------------------------------

# Flags of `data synth` named like SynthConfig's fields; a flag left out keeps the field's default (the defaults
# in the help texts are SynthConfig's: tests/platform/test_cli_data.py checks them). Importing SynthConfig here
# would load torch for every command.
SYNTH_FLAGS = ("clips", "frames", "width", "height", "fps", "min_players", "max_players", "views", "blur",
               "child_fraction", "motions", "seed")


def cmd_data_synth(args: argparse.Namespace) -> int:
    import time

    # Deferred to this command (CLI start-up time): the generator and its config load cv2 and torch.
    from sportpose.data.inspect import format_summary, load_dataset, summarize
    from sportpose.data.synthcourt import generate
    from sportpose.spec.data import SynthConfig

    try:
        config = SynthConfig(**{k: getattr(args, k) for k in SYNTH_FLAGS if getattr(args, k) is not None})
    except SpecError as e:  # name the flag the user typed, not the dataclass field
        raise SpecError(f"--{e.key.replace('_', '-')}", e.message) from None
    if args.workers < 1:
        raise SpecError("--workers", f"expected at least 1 process, got {args.workers}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise DataError(str(out), "--out", "is a file; expected a dataset folder")
    manifest = out / "manifest.json"
    before = manifest.stat().st_mtime_ns if manifest.exists() else None
    start = time.perf_counter()
    manifest = generate(out, config, progress=True, workers=args.workers)
    seconds = time.perf_counter() - start
    n = config.clips * config.frames
    if before is not None and manifest.stat().st_mtime_ns == before:
        print(f"SynthCourt: {out} is up to date with this config; nothing generated")
    else:
        print(f"SynthCourt: {config.clips} clips x {config.frames} frames ({config.width}x{config.height}, "
              f"{config.fps:g} fps, seed {config.seed}) in {seconds:.1f} s ({n / max(seconds, 1e-9):.0f} frames/s)")
    print(format_summary(summarize(load_dataset(manifest))))
    print(f"manifest: {manifest}")
    return 0


def _data_synth_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="dataset folder (created; left as is when already up to date)")
    p.add_argument("--clips", type=int, help="number of clips (default 8)")
    p.add_argument("--frames", type=int, help="frames per clip, at most 9999 (default 48)")
    p.add_argument("--width", type=int, help="frame width in pixels, even (default 320)")
    p.add_argument("--height", type=int, help="frame height in pixels, even (default 240)")
    p.add_argument("--fps", type=float, help="frame rate (default 25)")
    p.add_argument("--min-players", type=int, help="fewest players in a clip, 1-6 (default 1)")
    p.add_argument("--max-players", type=int, help="most players in a clip, 1-6 (default 3)")
    p.add_argument("--views", nargs="+", metavar="VIEW",
                   help="camera view groups from sideline, baseline, high_angle; clip i uses the (i mod n)-th (default sideline)")
    p.add_argument("--blur", nargs="+", metavar="LEVEL", help="motion blur levels from none, low, high (default none)")
    p.add_argument("--child-fraction", type=float, help="fraction of clips whose players are children (default 0)")
    p.add_argument("--motions", nargs="+", metavar="MOTION",
                   help="motion primitives players may perform (default run jog dribble jump_shot pass defensive_slide idle)")
    p.add_argument("--seed", type=int, help="random seed: the same seed gives the same annotations (default 0)")
    p.add_argument("--workers", type=int, default=1, help="processes generating clips in parallel (default 1)")


def cmd_data_inspect(args: argparse.Namespace) -> int:
    from sportpose.data.inspect import format_summary, inspect_dataset

    result = inspect_dataset(args.path, args.out, frames=args.frames)
    print(format_summary(result.summary))
    print(f"contact sheet: {result.sheet} ({result.sheet_size[0]}x{result.sheet_size[1]} px)")
    print(f"summary:       {result.summary_file}")
    return 0


def _data_inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a SynthCourt folder, or PoseTrack annotations (a .json file or a folder of them)")
    p.add_argument("--out", default=None,
                   help="output folder (default PATH/inspect when writable, else runs/inspect/NAME)")
    p.add_argument("--frames", type=int, default=12, help="frames on the contact sheet (default 12)")


def cmd_eval_posetrack(args: argparse.Namespace) -> int:
    from sportpose.evaluation.posetrack_eval import evaluate_folders, format_ap_table, to_json

    result = evaluate_folders(args.gt, args.pred)
    print(f"PoseTrack AP (poseval), %: ground truth {args.gt}, predictions {args.pred} (boxes as predicted)")
    print(format_ap_table(result))
    if args.json:
        out = Path(args.json)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(to_json(result) + "\n")
        except OSError as e:
            raise DataError(str(out), "--json", f"cannot be written ({e.strerror})") from None
        print(f"wrote {out}")
    return 0


def _eval_posetrack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gt", required=True, help="folder of ground-truth PoseTrack JSON files, one per video")
    p.add_argument("--pred", required=True, help="folder of prediction files with the same names")
    p.add_argument("--json", default=None, metavar="OUT", help="write {per_joint, groups} AP in percent to this file")


# A command group is a dict: sub-command -> (help, add_args, func); `sportpose data prepare` is one more entry.
Subcommands = dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]]

def cmd_data_prepare(args: argparse.Namespace) -> int:
    from sportpose.spec.experiment import load_spec

    spec = load_spec(args.spec, args.override)
    from sportpose.data.prepare import prepare
    from sportpose.pipelines.train import prepare_data
    from sportpose.platform.runtime import init_ray

    init_ray(args.address)
    prepare_data(spec)
    folder = prepare(spec, progress=True)
    print(f"prepared samples: {folder}")
    print("train from them with -o data.prepared=true (an unchanged spec reuses them)")
    return 0


def _data_prepare_args(p: argparse.ArgumentParser) -> None:
    _add_spec_args(p)


DATA_COMMANDS: Subcommands = {
    "synth": ("generate a SynthCourt dataset: mp4 clips, PoseTrack18 JSON, 3D joints, manifest",
              _data_synth_args, cmd_data_synth),
    "inspect": ("summary counts and a contact sheet of frames with the ground truth drawn (SynthCourt or PoseTrack)",
                _data_inspect_args, cmd_data_inspect),
    "prepare": ("cut a spec's samples once into Parquet shards, reused while the fields that shape them are unchanged",
                _data_prepare_args, cmd_data_prepare),
}

EVAL_COMMANDS: Subcommands = {
    "posetrack": ("PoseTrack AP of a prediction folder against a ground-truth folder, as poseval computes it",
                  _eval_posetrack_args, cmd_eval_posetrack),
}


def _group_args(table: Subcommands) -> Callable[[argparse.ArgumentParser], None]:
    def add_args(p: argparse.ArgumentParser) -> None:
        sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
        for name, (text, add, _) in table.items():
            add(sub.add_parser(name, help=text, description=text))

    return add_args


def _group_func(table: Subcommands) -> Callable[[argparse.Namespace], int]:
    return lambda args: table[args.action][2](args)


# ---- sportpose submit, jobs list|status|logs|stop, mlflow-server (clusters: SPEC §10) ----------------------


def _cluster_errors(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """An unreachable cluster or a refused submission is a message and exit status 2, like a bad spec."""

    def run(args: argparse.Namespace) -> int:
        from sportpose.platform.jobs import ClusterError

        try:
            return func(args)
        except ClusterError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2

    return run


def _address_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--address", default=None, metavar="URL",
                   help="the cluster's job API, http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS, else an http RAY_ADDRESS)")


def cmd_submit(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    env = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SpecError("--env", f"expected KEY=VALUE, got {item!r}")
        env[key] = value
    job_id = jobs.submit(args.spec, args.address, args.override, command="sweep" if args.sweep else "train",
                         tracking_uri=args.tracking_uri, env=env, pip=args.pip, shared_storage=args.shared_storage,
                         validate=not args.no_validate)
    print(job_id, flush=True)
    if not args.follow:
        print(f"follow it: sportpose jobs logs {job_id} --follow", file=sys.stderr)
        return 0
    return _follow_job(job_id, args.address)


def _follow_job(job_id: str, address: str | None) -> int:
    """Stream the job's logs; exit with its status (0 succeeded, 1 failed, 3 stopped)."""
    from sportpose.platform import jobs

    try:
        status = jobs.follow(job_id, address)
    except KeyboardInterrupt:
        print(f"\nstopped following; the job keeps running (stop it: sportpose jobs stop {job_id})", file=sys.stderr)
        return 130
    reason = "" if status == "SUCCEEDED" else f": {_job_reason(jobs.job_info(job_id, address).message)}"
    print(f"job {job_id}: {status}{reason}", file=sys.stderr)
    return jobs.EXIT_CODES[status]


def _job_reason(message: str | None) -> str:
    """A failed job's message holds the tail of its logs: the last `error:` line says why, else its first line."""
    lines = [line.strip() for line in (message or "").splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    return (errors or lines or ["no message"])[-1 if errors else 0]


def _submit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="experiment spec (YAML); with --sweep a sweep spec")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key on the cluster, e.g. -o train.storage_path=s3://bucket/runs (repeatable)")
    _address_arg(p)
    p.add_argument("--follow", action="store_true", help="stream the job's logs and exit with its status "
                                                         "(0 succeeded, 1 failed, 3 stopped)")
    p.add_argument("--sweep", action="store_true", help="run `sportpose sweep SPEC` instead of `sportpose train SPEC`")
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="MLFLOW_TRACKING_URI of the job, an MLflow server every node reaches (default: this shell's)")
    p.add_argument("--shared-storage", action="append", default=[], metavar="PATH",
                   help="a folder mounted at the same path on every node (NFS): local storage_path and data.root "
                        "under it are accepted on a multi-node cluster (repeatable; also SPORTPOSE_SHARED_STORAGE)")
    p.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable of the job, e.g. --env SPORTPOSE_RUNS=/mnt/nfs/runs (repeatable)")
    p.add_argument("--pip", action="store_true", help="install the project's requirements into the job's runtime_env "
                                                      "(slow; for a cluster whose image lacks them)")
    p.add_argument("--no-validate", action="store_true",
                   help="do not load the spec here: the job validates it first thing and fails with the key named")


def cmd_jobs_list(args: argparse.Namespace) -> int:
    import time

    from sportpose.platform import jobs

    rows = []
    for j in jobs.list_jobs(args.address):
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(j.start_time / 1000)) if j.start_time else ""
        end = j.end_time or time.time() * 1000
        took = f"{(end - j.start_time) / 1000:.0f}s" if j.start_time else ""
        what = (j.metadata or {}).get("sportpose.spec") or (j.entrypoint or "")[:60]
        rows.append({"id": j.submission_id or j.job_id or "", "status": str(j.status.value), "started": start,
                     "took": took, "spec": what})
    if not rows:
        print("no jobs")
        return 0
    cols = ("id", "status", "started", "took", "spec")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in cols))
    return 0


def cmd_jobs_status(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    info = jobs.job_info(args.id, args.address)
    status = str(info.status.value)
    print(f"job:        {info.submission_id}")
    print(f"status:     {status}" + (f" (exit code {info.driver_exit_code})" if info.driver_exit_code is not None else ""))
    print(f"entrypoint: {info.entrypoint}")
    if status in ("FAILED", "STOPPED"):
        print(f"reason:     {_job_reason(info.message)}")
    workers = jobs.train_workers(info, args.address)
    if workers:
        nodes = sorted({w["node_id"] for w in workers})
        print(f"Ray Train workers: {len(workers)} on {len(nodes)} node(s): " + ", ".join(n[:12] for n in nodes))
    if args.verbose and info.message:
        print("message:")
        print(info.message.rstrip())
    return 0


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    if args.follow:
        return _follow_job(args.id, args.address)
    print(jobs.job_logs(args.id, args.address), end="")
    return 0


def cmd_jobs_stop(args: argparse.Namespace) -> int:
    from sportpose.platform import jobs

    status = jobs.stop_job(args.id, args.address, timeout=args.timeout)
    print(f"job {args.id}: {status}")
    return 0 if status in jobs.TERMINAL else 1


def _job_id_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("id", help="the job's submission id, as `sportpose submit` printed it")
    _address_arg(p)


def _jobs_status_args(p: argparse.ArgumentParser) -> None:
    _job_id_args(p)
    p.add_argument("-v", "--verbose", action="store_true", help="also print the cluster's full status message")


def _jobs_logs_args(p: argparse.ArgumentParser) -> None:
    _job_id_args(p)
    p.add_argument("--follow", action="store_true", help="stream until the job ends; exit with its status")


def _jobs_stop_args(p: argparse.ArgumentParser) -> None:
    _job_id_args(p)
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the job to stop (default 60)")


JOBS_COMMANDS: Subcommands = {
    "list": ("every job of the cluster: id, status, start, duration, spec", _address_arg, _cluster_errors(cmd_jobs_list)),
    "status": ("a job's status, why it failed, and the nodes its Ray Train workers ran on", _jobs_status_args,
               _cluster_errors(cmd_jobs_status)),
    "logs": ("a job's logs (--follow: stream them until it ends)", _jobs_logs_args, _cluster_errors(cmd_jobs_logs)),
    "stop": ("stop a running job and wait until it has stopped", _jobs_stop_args, _cluster_errors(cmd_jobs_stop)),
}


def cmd_mlflow_server(args: argparse.Namespace) -> int:
    from sportpose.platform.mlflow_server import ServerArgs, serve

    return serve(ServerArgs(host=args.host, port=args.port, backend_store_uri=args.backend_store_uri,
                            artifacts_destination=args.artifacts_destination, workers=args.workers,
                            allowed_hosts=args.allowed_hosts))


def _mlflow_server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1; 0.0.0.0 for a team or "
                                                       "cluster, behind your network boundary)")
    p.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    p.add_argument("--backend-store-uri", default=None, metavar="URI",
                   help="database for runs and the registry, any SQLAlchemy URI (default sqlite:///runs/mlflow.db)")
    p.add_argument("--artifacts-destination", default=None, metavar="URI",
                   help="artifact store the server proxies: a folder, s3://, gs://... (default runs/mlartifacts)")
    p.add_argument("--workers", type=int, default=2, help="server worker processes (default 2)")
    p.add_argument("--allowed-hosts", default=None, metavar="HOSTS",
                   help="Host headers to accept when reached by name, e.g. mlflow.internal:5000 (MLflow's guard "
                        "against DNS rebinding; default localhost and private addresses)")


# ---- sportpose sweep, dashboard (SPEC §8) -------------------------------------------------------------------


def cmd_sweep(args: argparse.Namespace) -> int:
    from sportpose.pipelines.sweep.run import load_sweep

    sweep = load_sweep(args.spec, args.override)  # the sweep and its base spec, checked before anything starts
    from sportpose.pipelines.sweep.run import run_sweep
    from sportpose.platform.runtime import init_ray

    init_ray(args.address)
    result = run_sweep(sweep, resume=args.resume)
    done = sum(r["status"] in ("completed", "stopped", "error") for r in result.records)
    spec = sweep.spec
    print()
    print(f"== sweep {result.name}: {done}/{result.trials} trials finished ({result.new_trials} now, "
          f"{result.seconds / 60:.1f} min) ==")
    if result.best:
        values = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best["columns"].items())
        print(f"best: trial {result.best['number']}: {spec.metric} = {result.best['value']:.4g} ({spec.mode})  {values}")
    for name, label in (("results_csv", "results"), ("best_spec", "best spec"), ("html", "report")):
        if name in result.outputs:
            print(f"{label + ':':11s}{result.outputs[name]}")
    if "best_spec" in result.outputs:
        print(f"train it:  sportpose train {result.outputs['best_spec']}")
    print(f"Optuna:    study {result.study_name} in {result.storage}")
    print(f"MLflow parent run: {result.parent_run_id}   (dashboards: sportpose dashboard)")
    if result.interrupted:
        print(f"interrupted: continue with sportpose sweep {args.spec} --resume", file=sys.stderr)
        return 130
    return 0


def _sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="sweep spec (YAML), e.g. experiments/sweeps/fusion_weights_demo.yaml")
    p.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                   help="override a sweep key, e.g. -o trials=10 -o concurrency=2 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue this sweep's last run: finished trials stay, interrupted ones continue")
    p.add_argument("--address", default=None, help="Ray cluster address (default: RAY_ADDRESS, else a local Ray)")


def cmd_dashboard(args: argparse.Namespace) -> int:
    from sportpose.platform.dashboard import DashboardArgs, serve

    return serve(DashboardArgs(mlflow_port=args.mlflow_port, optuna_port=args.optuna_port, storage=args.storage))


def _dashboard_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlflow-port", type=int, default=5000, help="port of the MLflow UI (default 5000)")
    p.add_argument("--optuna-port", type=int, default=8080, help="port of optuna-dashboard (default 8080)")
    p.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage of the sweeps' studies (default sqlite:///runs/optuna.db)")


# ---- sportpose reproduce (issue 11) ----------------------------------------------------------------------------


def cmd_reproduce(args: argparse.Namespace) -> int:
    from sportpose.pipelines.reproduce.study import run_command

    return run_command(args)


def _reproduce_args(p: argparse.ArgumentParser) -> None:
    from sportpose.pipelines.reproduce.study import add_arguments

    add_arguments(p)


# ---- sportpose infer, evaluate, compare (SPEC §7, issue 8) ---------------------------------------------------


def _passive_openmp() -> None:
    """OpenMP threads that sleep while they wait, set before torch loads: with the default (spinning) policy a
    forward pass on a machine whose cores are busy with other work runs many times slower (measured 7x for a
    small model on 2 busy cores)."""
    import os

    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cmd_infer(args: argparse.Namespace) -> int:
    _passive_openmp()
    from sportpose.inference.run import InferArgs, run_infer

    result = run_infer(InferArgs(
        video=args.video, model=args.model, out=args.out, detections=args.detections, spec=args.spec, gt=args.gt,
        det_threshold=args.det_threshold, keep_threshold=args.keep_threshold, draw_threshold=args.draw_threshold,
        batch_size=args.batch_size, threads=args.threads, decoder=args.decoder, overwrite=args.overwrite,
        progress=not args.no_progress))
    print(f"{result.frames} frames in {result.seconds:.1f} s: {result.fps:.1f} FPS end to end "
          f"(model alone {result.model_fps:.1f} FPS); {result.poses} poses in {result.tracks} tracks")
    print(f"boxes: {result.boxes}")
    if result.ap is not None:
        from sportpose.evaluation.posetrack_eval import format_ap_table

        print(f"PoseTrack AP (poseval, %) against {args.gt}:")
        print(format_ap_table(result.ap))
    for what, name in result.files.items():
        print(f"{what + ':':14s}{result.out / name if ',' not in name else name}")
    return 0


def _infer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="the video file")
    p.add_argument("--model", required=True, metavar="URI|CHECKPOINT",
                   help="models:/NAME@ALIAS, models:/NAME/VERSION, a checkpoint folder (a stage's, or a Ray Train run "
                        "folder: its best epoch) or a checkpoint file")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (appears only when complete)")
    p.add_argument("--detections", default=None, metavar="FILE",
                   help="person detections in the COCO results format (default: the built-in proposal, see README)")
    p.add_argument("--spec", default=None, help="experiment spec of a checkpoint (default: spec.yaml or resolved.yaml "
                                                "beside it, or the pipeline's record of its run)")
    p.add_argument("--gt", default=None, metavar="FILE",
                   help="the video's PoseTrack18 ground truth: print and write the predictions' AP")
    p.add_argument("--det-threshold", type=float, default=0.5, help="drop detections scoring below (default 0.5)")
    p.add_argument("--keep-threshold", type=float, default=0.3,
                   help="keep a pose estimated in a box propagated from a track when its mean joint score reaches "
                        "this (default 0.3)")
    p.add_argument("--draw-threshold", type=float, default=0.2, help="joints scoring below are not drawn (default 0.2)")
    p.add_argument("--batch-size", type=int, default=16, help="person tubes per forward pass (default 16)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: one per core; 1 on a busy machine)")
    p.add_argument("--decoder", default="opencv", choices=("opencv", "decord"),
                   help="video decoder (default opencv, decord when OpenCV cannot open the file; see README)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder once the new one is done")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_evaluate(args: argparse.Namespace) -> int:
    _passive_openmp()
    from sportpose.pipelines.evaluate import EvaluateArgs, run_evaluate
    from sportpose.platform.runtime import init_ray

    eval_args = EvaluateArgs(model=args.model, spec=args.spec, overrides=tuple(args.override), out=args.out,
                             similarity=args.similarity, similarity_clips=args.similarity_clips,
                             overlays=args.overlays, overwrite=args.overwrite, mlflow=not args.no_mlflow)
    init_ray(args.address)
    result = run_evaluate(eval_args)
    m = result.metrics
    print()
    print(f"== {m['model'].get('label')}: {m['protocol']['split']} split of {m['protocol']['data']} ==")
    print("protocol: " + " · ".join(f"{k} {m['protocol'][k]}" for k in ("split", "boxes", "flip_test", "seed",
                                                                         "samples", "clips")))
    if m["kind"] == "3d":
        print(f"MPJPE {m['mpjpe']:.1f} mm · P-MPJPE {m['p_mpjpe']:.1f} mm · PCK3D {m['pck3d']:.1f} · "
              f"AUC {m['auc3d']:.1f} · TS {m['ts']:.2f} mm/frame²")
    else:
        if m.get("ap_groups"):
            print("AP  " + "  ".join(f"{k} {v:.1f}" for k, v in m["ap_groups"].items()))
        if m.get("pckh") == m.get("pckh"):
            print(f"PCKh {m['pckh']:.1f}")
    c = m.get("complexity") or {}
    if c:
        print(f"complexity: {c['params_m']:.2f} M params · {c['gmacs']:.2f} GMACs · {c['fps']:.1f} FPS at batch 1")
    print(f"report:    {result.out / 'report.md'}")
    if result.run_id:
        print(f"MLflow run {result.run_id} (artifacts: evaluation/)")
    return 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="models:/NAME@ALIAS, models:/NAME/VERSION, a checkpoint folder or file")
    _add_spec_args(p)
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default runs/outputs/<spec name>/eval-<run id>)")
    p.add_argument("--similarity", action="store_true",
                   help="also the feature similarity over time between frames t and t+k (2D paper, Fig. 6)")
    p.add_argument("--similarity-clips", type=int, default=4, help="clips the similarity is computed on (default 4)")
    p.add_argument("--overlays", type=int, default=4, help="best and worst frames drawn, each (default 4)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")
    p.add_argument("--no-mlflow", action="store_true", help="write the folder only, no MLflow run")


def cmd_compare(args: argparse.Namespace) -> int:
    from sportpose.pipelines.compare import compare_table, load_evaluation

    table = compare_table([load_evaluation(source) for source in args.sources])
    print(table)
    if args.out:
        out = Path(args.out)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(table + "\n")
        except OSError as e:
            raise DataError(str(out), "--out", f"cannot be written ({e.strerror})") from None
    return 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", metavar="RUN_OR_MODEL",
                   help="an evaluate output folder or metrics.json, an MLflow run id, or models:/NAME@ALIAS")
    p.add_argument("--out", default=None, metavar="FILE", help="also write the table to this markdown file")


COMMANDS: list[Command] = [
    ("demo", _demo_args, cmd_demo),
    ("train", _train_args, cmd_train),
    ("registry", _registry_args, cmd_registry),
    ("data", _group_args(DATA_COMMANDS), _group_func(DATA_COMMANDS)),
    ("eval", _group_args(EVAL_COMMANDS), _group_func(EVAL_COMMANDS)),
    ("submit", _submit_args, _cluster_errors(cmd_submit)),
    ("jobs", _group_args(JOBS_COMMANDS), _group_func(JOBS_COMMANDS)),
    ("mlflow-server", _mlflow_server_args, cmd_mlflow_server),
    ("sweep", _sweep_args, cmd_sweep),
    ("dashboard", _dashboard_args, cmd_dashboard),
    ("infer", _infer_args, cmd_infer),
    ("evaluate", _evaluate_args, cmd_evaluate),
    ("compare", _compare_args, cmd_compare),
    ("reproduce", _reproduce_args, cmd_reproduce),
]

HELP = {
    "demo": "the tour: SynthCourt, MultiStream and STSP-Net trained in stages on local Ray, reports, a sweep, the registry",
    "train": "run an experiment spec's training pipeline on Ray, evaluate and register the model",
    "registry": "list registered models, or move an alias (promote)",
    "data": "datasets: generate SynthCourt (synth), inspect a SynthCourt or PoseTrack dataset (inspect)",
    "eval": "evaluate prediction files against ground truth: PoseTrack AP (posetrack)",
    "submit": "submit `sportpose train SPEC` (or sweep) to a Ray cluster as a job; --follow streams its logs",
    "jobs": "a Ray cluster's jobs: list, status, logs, stop",
    "mlflow-server": "run an MLflow tracking server (database backend, artifact store) for a team or a cluster",
    "sweep": "run a hyper-parameter sweep (Ray Tune, Optuna TPE, ASHA): table, best spec, plots, sweep.html",
    "reproduce": "reproduce a table or figure of the papers (--list): reports/NAME/table.md beside the paper's numbers",
    "infer": "run a model on a video: tracked skeletons (mp4), PoseTrack18 JSON, 3D joints for STSP-Net, FPS",
    "evaluate": "evaluate a model on a spec's test split: report.md with AP or 3D tables, breakdowns, plots, MLflow run",
    "compare": "several evaluations side by side in one markdown table (evaluate folders, MLflow runs, models:/)",
    "dashboard": "start the MLflow UI and optuna-dashboard (where installed) on 127.0.0.1 and print their URLs",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sportpose", description="Sports video pose estimation experiments on Ray.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, add_args, func in COMMANDS:
        p = sub.add_parser(name, help=HELP[name], description=HELP[name])
        add_args(p)
        p.set_defaults(func=func)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (SpecError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
