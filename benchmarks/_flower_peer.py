"""Flower peer of the horizontal-FL benchmark: the same model, data and local training as jointly, on Flower.

Runs in Flower's own virtual environment (``benchmarks/flower_setup.sh`` makes it) with
jointly's ``src`` and this folder on ``PYTHONPATH``::

    benchmarks/.flwr-venv/bin/python benchmarks/_flower_peer.py --data-dir DIR --clients c1,c2 \\
        --model '{"family": "cnn", ...}' --rounds 20 [--secagg] --out result.json

``DIR`` holds, for each client ``NAME``, ``NAME.npz`` with the exact arrays jointly's client of the
same name trains and tests on (``x_train, y_train, x_test, y_test``; ``benchmarks/horizontal.py``
writes them with jointly's own loader), and ``test.npz`` (``x, y``), the union of the clients' test
rows on which Flower evaluates the global model centrally (the same number as jointly's federated
evaluation: the example-weighted mean of the clients' accuracies).

Flower runs one of two ways (``--mode``):

- ``deployment`` (default): its local deployment, one ``flower-superlink`` and one
  ``flower-supernode`` per client, separate processes talking over loopback (insecure: Flower's TLS
  is off, jointly's mutual TLS is on), the app submitted with ``flwr run``.  A SuperNode starts a
  fresh ``flwr-clientapp`` process for every message it gets.
- ``simulation``: its Simulation Runtime (``flwr.simulation.run_simulation`` on Ray), the ServerApp
  in this process and the ClientApps in long-lived Ray actors that keep their state between
  messages, one CPU each (so on this 2-core machine two clients train at a time); messages pass in
  memory, nothing crosses a network.

The ServerApp uses Flower's workflow API
(``DefaultWorkflow`` with the classic ``FedAvg`` strategy), the only API on which Flower offers
secure aggregation: ``--secagg`` swaps in ``SecAggPlusWorkflow`` (with every client sharing keys with
every other, and a reconstruction threshold of a strict majority, as jointly's default) and the
ClientApp gets ``secaggplus_mod``.  Both sides build the model with jointly's
``jointly.learn.horizontal.models`` and train it with jointly's ``Trainer`` (plain torch), seeded
the same way per client and round, one torch thread per client.

``bytes`` per round are the protobuf-encoded sizes of every message the clients receive and send
(counted by a ClientApp mod; Flower has no byte counter), i.e. the traffic through the SuperLink
without HTTP framing.  Prints one JSON object (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _common import MemorySampler

HERE = Path(__file__).resolve().parent
APP_MODULE = "jointly_flwr_app"


# -- what jointly shares with this peer (numpy + torch only) ---------------------------------------
def _model(model_json: str) -> Any:
    from jointly.learn.horizontal.models import ModelSpec, build_model

    raw = json.loads(model_json)
    return build_model(ModelSpec(**raw)), int(raw.get("num_classes", 2))


# -- the Flower app (deployment: loaded by flwr-serverapp / flwr-clientapp; simulation: here and in Ray actors)
CONFIG_ENV = "JOINTLY_FLWR_CONFIG"  # simulation: the run config, as a JSON file (Ray actors inherit it)


_CONFIGS: dict[str, dict[str, Any]] = {}


def _run_config(context: Any) -> dict[str, Any]:
    """The app's run config: from ``flwr run`` (deployment) or the file named in $JOINTLY_FLWR_CONFIG."""
    if "rounds" in context.run_config:
        return dict(context.run_config)
    path = os.environ[CONFIG_ENV]
    if path not in _CONFIGS:
        _CONFIGS[path] = json.loads(Path(path).read_text())
    return _CONFIGS[path]


def _node_config(context: Any) -> dict[str, Any]:
    """This client's data, index and byte log: from --node-config, or from the simulated partition-id."""
    node = context.node_config
    if "data" in node:
        return dict(node)
    cfg = _run_config(context)
    index = int(node["partition-id"])
    name = str(cfg["clients"]).split(",")[index]
    return {
        "data": str(Path(str(cfg["data-dir"])) / f"{name}.npz"),
        "index": index,
        "log": str(Path(str(cfg["logs"])) / f"{name}.bytes.jsonl"),
    }


def _server_main(grid: Any, context: Any) -> None:
    from flwr.common import ndarrays_to_parameters
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.strategy import FedAvg
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    from jointly.learn.horizontal.models import get_weights
    from jointly.learn.horizontal.trainer import LocalData, TrainConfig, Trainer, combine_eval

    cfg = _run_config(context)
    began = time.time()
    clients = int(cfg["num-clients"])
    rounds = int(cfg["rounds"])
    torch.set_num_threads(int(cfg["threads"]))
    torch.manual_seed(int(cfg["seed"]))
    model, classes = _model(str(cfg["model"]))
    initial = get_weights(model)
    with np.load(str(cfg["test"])) as z:
        x, y = z["x"], z["y"]
    evaluator = Trainer(model, LocalData(x, y, x, y), TrainConfig(), num_classes=classes)
    timeline: dict[str, Any] = {"serverapp_started": began, "fit_started": {}, "evaluated": {}}
    history: list[dict[str, Any]] = []

    def central(server_round: int, weights: list[np.ndarray], _config: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        metrics = combine_eval([evaluator.evaluate(weights)])
        timeline["evaluated"][server_round] = time.time()
        history.append({"round": server_round, **metrics})
        return float(metrics["loss"]), {k: float(v) for k, v in metrics.items()}

    class TimedFedAvg(FedAvg):  # type: ignore[misc]
        def configure_fit(self, server_round: int, parameters: Any, client_manager: Any) -> Any:
            timeline["fit_started"].setdefault(server_round, time.time())
            return super().configure_fit(server_round, parameters, client_manager)

    strategy = TimedFedAvg(
        fraction_fit=1.0,
        fraction_evaluate=0.0,
        min_fit_clients=clients,
        min_evaluate_clients=0,
        min_available_clients=clients,
        evaluate_fn=central,
        on_fit_config_fn=lambda r: {"server_round": r},
        initial_parameters=ndarrays_to_parameters(initial),
        accept_failures=False,
    )
    fit_workflow = None
    if bool(cfg["secagg"]):
        fit_workflow = SecAggPlusWorkflow(
            num_shares=clients,
            reconstruction_threshold=clients // 2 + 1,
            max_weight=float(cfg["max-weight"]),
            clipping_range=float(cfg["clipping-range"]),
        )
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds), strategy=strategy)
    DefaultWorkflow(fit_workflow=fit_workflow)(grid, legacy)
    result = {"history": history, "timeline": timeline, "finished": time.time()}
    out = Path(str(cfg["result"]))
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.replace(out)


_TRAINERS: dict[str, Any] = {}


def _trainer(context: Any) -> Any:
    from jointly.learn.horizontal.trainer import LocalData, TrainConfig, Trainer

    cfg, node = _run_config(context), _node_config(context)
    path = str(node["data"])
    if path not in _TRAINERS:
        torch.set_num_threads(int(cfg["threads"]))
        torch.manual_seed(int(cfg["seed"]))
        model, classes = _model(str(cfg["model"]))
        with np.load(path) as z:
            data = LocalData(z["x_train"], z["y_train"], z["x_test"], z["y_test"])
        config = TrainConfig(
            local_epochs=int(cfg["local-epochs"]),
            batch_size=int(cfg["batch-size"]),
            lr=float(cfg["lr"]),
            momentum=float(cfg["momentum"]),
            threads=int(cfg["threads"]),
        )
        _TRAINERS[path] = Trainer(model, data, config, num_classes=classes)
    return _TRAINERS[path]


def _client_fn(context: Any) -> Any:
    from flwr.client import NumPyClient

    from jointly.learn.horizontal.trainer import round_seed  # the seeds jointly's clients train with

    trainer = _trainer(context)
    seed, index = int(_run_config(context)["seed"]), int(_node_config(context)["index"])

    class BenchClient(NumPyClient):  # type: ignore[misc]
        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]) -> Any:
            rnd = int(config["server_round"])
            weights, loss = trainer.fit(parameters, seed=round_seed(seed, index, rnd))
            return weights, trainer.data.num_train, {"loss": float(loss)}

    return BenchClient().to_client()


def _count_bytes(msg: Any, context: Any, call_next: Any) -> Any:
    """ClientApp mod: log the encoded size of every message this client receives and sends."""
    from flwr.common.serde import recorddict_to_proto

    size_in = recorddict_to_proto(msg.content).ByteSize()
    reply = call_next(msg, context)
    size_out = recorddict_to_proto(reply.content).ByteSize() if reply.has_content() else 0
    line = {"round": msg.metadata.group_id, "type": msg.metadata.message_type, "in": size_in, "out": size_out}
    with open(str(_node_config(context)["log"]), "a") as fh:
        fh.write(json.dumps(line) + "\n")
    return reply


def _apps() -> tuple[Any, Any, Any]:
    from flwr.client import ClientApp
    from flwr.client.mod import secaggplus_mod
    from flwr.server import ServerApp

    server = ServerApp()
    server.main()(_server_main)
    return (
        server,
        ClientApp(client_fn=_client_fn, mods=[_count_bytes]),
        ClientApp(client_fn=_client_fn, mods=[_count_bytes, secaggplus_mod]),
    )


# -- the local deployment --------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def _write_app(app_dir: Path, config: dict[str, Any], secagg: bool) -> None:
    app_dir.mkdir(parents=True)
    (app_dir / f"{APP_MODULE}.py").write_text(
        "from _flower_peer import _apps\n\n_apps_ = _apps()\n"
        "server = _apps_[0]\nclient = _apps_[1]\nclient_secagg = _apps_[2]\n"
    )
    lines = [
        "[build-system]",
        'requires = ["hatchling"]',
        'build-backend = "hatchling.build"',
        "",
        "[project]",
        'name = "jointly-bench"',
        'version = "1.0.0"',
        'description = "the horizontal benchmark of jointly, on Flower"',
        'license = "Apache-2.0"',
        "dependencies = []",
        "",
        "[tool.hatch.build.targets.wheel]",
        'packages = ["."]',
        "",
        "[tool.flwr.app]",
        'publisher = "jointly"',
        "",
        "[tool.flwr.app.components]",
        f'serverapp = "{APP_MODULE}:server"',
        f'clientapp = "{APP_MODULE}:{"client_secagg" if secagg else "client"}"',
        "",
        "[tool.flwr.app.config]",
        *(f"{k} = {_toml(v)}" for k, v in config.items()),
        "",
    ]
    (app_dir / "pyproject.toml").write_text("\n".join(lines))


def _wait_port(port: int, procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args!r} exited with {p.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def _wait_nodes(log: Path, count: int, procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Wait until the SuperLink has activated ``count`` SuperNodes (so `flwr run` finds the federation up)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if log.exists() and log.read_text(errors="replace").count("Activated node_id") >= count:
            return
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{p.args[0]} exited with {p.returncode}")
        time.sleep(0.05)
    raise TimeoutError(f"{count} SuperNodes did not connect within {timeout} s")


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def run(args: argparse.Namespace) -> dict[str, Any]:
    t0 = time.time()
    clients = [c for c in args.clients.split(",") if c]
    data_dir = Path(args.data_dir).resolve()
    work = Path(tempfile.mkdtemp(prefix="jointly-bench-flwr-"))
    result_file = work / "server_result.json"
    max_weight = 1000.0
    for name in clients:
        with np.load(data_dir / f"{name}.npz") as z:
            max_weight = max(max_weight, float(len(z["y_train"])))
    config = {
        "num-clients": len(clients),
        "rounds": args.rounds,
        "local-epochs": args.local_epochs,
        "batch-size": args.batch_size,
        "lr": args.lr,
        "momentum": args.momentum,
        "seed": args.seed,
        "threads": args.threads,
        "model": args.model,
        "secagg": bool(args.secagg),
        "max-weight": max_weight,
        "clipping-range": args.clipping_range,
        "test": str(data_dir / "test.npz"),
        "result": str(result_file),
    }
    logs = work / "logs"
    logs.mkdir()
    if args.mode == "simulation":
        return _simulate(
            args,
            config | {"clients": ",".join(clients), "data-dir": str(data_dir), "logs": str(logs)},
            t0,
            work,
            clients,
            logs,
        )
    app_dir = work / "app"
    _write_app(app_dir, config, bool(args.secagg))
    home = work / "flwr-home"
    home.mkdir()
    port = _free_port()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(app_dir), *filter(None, [env.get("PYTHONPATH")])])
    env["FLWR_HOME"] = str(home)
    env["FLWR_DISABLE_UPDATE_CHECK"] = "1"
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    (home / "config.toml").write_text(
        f'[superlink]\ndefault = "bench"\n\n[superlink.bench]\naddress = "127.0.0.1:{port}"\ninsecure = true\n'
    )
    bindir = Path(sys.executable).parent
    procs: list[subprocess.Popen[bytes]] = []
    memory = MemorySampler([]).start()  # the SuperLink and SuperNodes are added as they start

    def start(name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        log = (logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(cmd, env=env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        memory.pids.append(proc.pid)
        return proc

    try:
        start(
            "superlink",
            [
                str(bindir / "flower-superlink"),
                "--insecure",
                "--isolation",
                "subprocess",
                "--disable-runtime-dependency-installation",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
        )
        _wait_port(port, procs, 60)
        for i, name in enumerate(clients):
            node_config = f'data="{data_dir / (name + ".npz")}" index={i} log="{logs / (name + ".bytes.jsonl")}"'
            start(
                name,
                [
                    str(bindir / "flower-supernode"),
                    "--insecure",
                    "--superlink",
                    f"127.0.0.1:{port}",
                    "--isolation",
                    "subprocess",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(_free_port()),
                    "--node-config",
                    node_config,
                ],
            )
        _wait_nodes(logs / "superlink.log", len(clients), procs, 120)
        t_submit = time.time()
        submit = subprocess.run(
            [str(bindir / "flwr"), "run", str(app_dir), "bench", "--format", "json"],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if submit.returncode != 0 or '"success": false' in submit.stdout:
            raise RuntimeError(
                f"flwr run failed ({submit.returncode}): {submit.stdout[-2000:]} {submit.stderr[-2000:]}"
            )
        deadline = time.monotonic() + args.timeout
        while not result_file.exists():
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"{p.args[0]} exited with {p.returncode}; logs in {logs}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"Flower did not finish in {args.timeout} s; logs in {logs}")
            time.sleep(0.05)
        wall = time.time() - t0
    finally:
        _stop(procs)
        memory.close()
    server = json.loads(result_file.read_text())
    out = _summarise(server, t0, t_submit, wall, clients, logs, args)
    out["peak_mb"] = round(memory.peak_mb, 1)
    out["submit"] = submit.stdout.strip()[-500:]
    return _finish(out, work, args)


def _simulate(
    args: argparse.Namespace, config: dict[str, Any], t0: float, work: Path, clients: list[str], logs: Path
) -> dict[str, Any]:
    """Flower's Simulation Runtime: ServerApp here, ClientApps in Ray actors of one CPU each."""
    from flwr.simulation import run_simulation

    config_file = work / "run_config.json"
    config_file.write_text(json.dumps(config))
    # Ray's workers inherit this process's environment: the run config and where _flower_peer lives.
    os.environ[CONFIG_ENV] = str(config_file)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [os.environ.get("PYTHONPATH")])])
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    server_app, client_app, client_secagg = _apps()
    cpus = os.cpu_count() or 1
    memory = MemorySampler([os.getpid()]).start()  # Ray's GCS, raylet and workers are its children
    t_submit = time.time()
    try:
        run_simulation(
            server_app=server_app,
            client_app=client_secagg if args.secagg else client_app,
            num_supernodes=len(clients),
            backend_config={
                "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                "init_args": {"num_cpus": cpus, "num_gpus": 0, "include_dashboard": False, "log_to_driver": False},
            },
        )
    finally:
        memory.close()
    wall = time.time() - t0
    result_file = Path(str(config["result"]))
    if not result_file.exists():
        raise RuntimeError(f"Flower's simulation ended without a result; logs in {logs}")
    out = _summarise(json.loads(result_file.read_text()), t0, t_submit, wall, clients, logs, args)
    out["peak_mb"] = round(memory.peak_mb, 1)
    return _finish(out, work, args)


def _finish(out: dict[str, Any], work: Path, args: argparse.Namespace) -> dict[str, Any]:
    if args.keep:
        out["workdir"] = str(work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _summarise(
    server: dict[str, Any],
    t0: float,
    t_submit: float,
    wall: float,
    clients: list[str],
    logs: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    timeline = server["timeline"]
    fit = {int(k): float(v) for k, v in timeline["fit_started"].items()}
    done = {int(k): float(v) for k, v in timeline["evaluated"].items()}
    rounds = sorted(fit)
    traffic: dict[int, int] = {}
    for name in clients:
        path = logs / f"{name}.bytes.jsonl"
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            try:
                rnd = int(rec["round"])
            except (TypeError, ValueError):
                continue
            traffic[rnd] = traffic.get(rnd, 0) + int(rec["in"]) + int(rec["out"])
    per_round = [
        {
            "round": r,
            "seconds": done[r] - fit[r],
            "bytes": traffic.get(r, 0),
            **{k: v for k, v in next(h for h in server["history"] if h["round"] == r).items() if k != "round"},
        }
        for r in rounds
    ]
    final = next(h for h in server["history"] if h["round"] == max(rounds))
    return {
        "flwr_version": _version("flwr"),
        "mode": args.mode,
        "deployment": (
            "local (flower-superlink + one flower-supernode per client, subprocess isolation, no Ray)"
            if args.mode == "deployment"
            else f"simulation runtime (Ray {_version('ray')}, one ClientApp actor per CPU, in-memory messages)"
        ),
        "secagg": bool(args.secagg),
        "clients": len(clients),
        "rounds": per_round,
        "accuracy": final["accuracy"],
        "auc": final.get("auc"),
        "loss": final["loss"],
        # from `flwr run` (the SuperLink and SuperNodes already up) to the first round's configure_fit
        "startup_seconds": fit[rounds[0]] - t_submit,
        # from launching the SuperLink (nothing running yet) to the first round
        "cold_start_seconds": fit[rounds[0]] - t0,
        # wall-clock time (time.time()) of the first round's end: the harness counts from its launch of this process
        "first_round_done_at": done[rounds[0]],
        "serverapp_started_seconds": float(timeline["serverapp_started"]) - t_submit,
        "training_seconds": done[max(rounds)] - fit[rounds[0]],
        "wall_seconds": wall,
        "bytes_total": sum(traffic.values()),
    }


def _version(package: str) -> str:
    import importlib.metadata

    return importlib.metadata.version(package)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data-dir", required=True, help="folder with NAME.npz per client and test.npz")
    parser.add_argument("--clients", required=True, help="client names, in jointly's order (it sets the seeds)")
    parser.add_argument("--model", required=True, help="the ModelSpec as JSON (jointly.learn.horizontal.models)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per client")
    parser.add_argument("--secagg", action="store_true", help="SecAgg+ (SecAggPlusWorkflow + secaggplus_mod)")
    parser.add_argument(
        "--mode",
        choices=("deployment", "simulation"),
        default="deployment",
        help="Flower's local deployment (processes on loopback) or its Simulation Runtime (Ray actors)",
    )
    parser.add_argument("--clipping-range", type=float, default=8.0, help="SecAgg+ clipping of each weight")
    parser.add_argument("--timeout", type=float, default=3600.0)
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs) and print its path")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    result = run(args)
    text = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
