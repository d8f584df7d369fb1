"""The torch engine's trainer (issue 23): core.Trainer's interface over minrnn.torch's
module of the same model, stepped by minrnn's own clipping and update rules (torch_update.py), so
that the training loop (training.Run) and the checkpoints stay as they are.

Under torchrun (WORLD_SIZE > 1, gloo on CPU) the module is wrapped in DistributedDataParallel and
each of the N processes takes B / N of every batch's records or streams (minrnn.torch.batch_part),
carrying its own streams' states. The loss each process backpropagates is N times its positions'
sum over the whole batch's count, so that DDP's mean of the gradients is the full batch's mean
gradient; every process then holds the same gradient, and the global norm and the update are the
same everywhere. flush() gathers the carried states of every process.

The numpy side (model.params, m, v and the carried state, in minrnn's block layout) is what a
checkpoint and the divergence rollback read and write; the torch side (the module's parameters,
the moments beside them in the module's layout, the carried state as nn.LSTM keeps it) is what
steps. flush() brings the numpy side up to date, load() the torch side. Dropout draws from
torch's generator, seeded at each step from the run's generator state (the checkpoint's), the step
and the process's rank: a torch run with dropout is reproducible and resumes bit for bit, but its
masks are not the C engine's (and change with the number of processes).

--device: the module, its moments and carried state live on a CUDA device when asked (or, with
"auto", when torch sees one), each torchrun process on GPU LOCAL_RANK with NCCL; the numpy side
stays on the host, and flush/load copy between them.
"""

import atexit
import copy
import datetime
import os
import secrets
import signal
import sys

import numpy as np
import torch
import torch.distributed as dist

from minrnn import core
from minrnn.errors import UserError
from minrnn import torch as mt
from minrnn.interop import torch_name
from minrnn.torch_update import Update


def file_layout(module, values):
    """{state-dict name: tensor} of `values` (one tensor per module parameter, in parameters()'
    order, in the module's layout), in the file's layout: what state_dict() gives for them."""
    params = list(module.parameters())
    saved = [p.data for p in params]
    try:
        for p, v in zip(params, values):
            p.data = v
        return {name: t.detach().clone() for name, t in module.state_dict().items()}
    finally:
        for p, d in zip(params, saved):
            p.data = d


def module_layout(module, tensors):
    """The inverse of file_layout: one tensor per module parameter, from {state-dict name: tensor}."""
    twin = copy.deepcopy(module)
    twin.load_state_dict(tensors, strict=True)
    return [p.detach().clone() for p in twin.parameters()]


def device_for(asked):
    """The torch.device of --device `asked` (auto, cpu or cuda) in this process."""
    if asked == "auto":
        asked = "cuda" if torch.cuda.is_available() else "cpu"
    if asked == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise UserError("--device cuda: this torch sees no CUDA device (torch.cuda.is_available() is False); "
                        "give --device cpu, or auto to use a GPU only where there is one")
    local = int(os.environ.get("LOCAL_RANK", "0"))   # torchrun's process number on this machine
    if local >= torch.cuda.device_count():
        raise UserError(f"--device cuda: process {local} on this machine has no GPU of its own (torch sees "
                        f"{torch.cuda.device_count()}); give torchrun --nproc-per-node at most that many")
    torch.cuda.set_device(local)
    return torch.device("cuda", local)


TIMEOUT = 60   # seconds a collective waits for a process that stopped, before every other one ends


def torchrun_store(world=None, host=False):
    """A client of the store torchrun's environment names (MASTER_ADDR, MASTER_PORT); host: serve it."""
    env = os.environ
    return dist.TCPStore(env["MASTER_ADDR"], int(env["MASTER_PORT"]), world, is_master=host,
                         timeout=datetime.timedelta(seconds=TIMEOUT), multi_tenant=True)


def join_group(backend):
    """init_process_group from torchrun's environment, with this attempt's keys apart from the last
    one's: torchrun's default (static) rendezvous keeps one store across --max-restarts, where a
    restarted job would read the addresses of the processes before it and fail (connection refused)."""
    env = os.environ
    rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
    agent = env.get("TORCHELASTIC_USE_AGENT_STORE") == "True"   # torchrun's agent serves the store
    store = torchrun_store(world, host=not agent and rank == 0)
    attempt = env.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend, store=dist.PrefixStore(f"minrnn/attempt-{attempt}", store), rank=rank,
                            world_size=world, timeout=datetime.timedelta(seconds=TIMEOUT))


JOB_KEY = "minrnn/job"   # in torchrun's agent store: the token of this job (not of one attempt)


def job_token(create=False):
    """The token of this torchrun job, kept in its agent's store (one for the whole job: every
    machine reads it, and it lasts across --max-restarts); create: a new one. None without an
    agent's store (then a restarted job does not resume by itself)."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    store = torchrun_store()
    if create:
        store.set(JOB_KEY, secrets.token_hex(16))
    return store.get(JOB_KEY).decode() if store.check([JOB_KEY]) else None


def finish_group(trainer):
    """At exit: wait for the job's other processes, then take the process group down. Without it,
    gloo's pairs are torn down while a peer still reads them, and a process ends in an abort
    (SIGABRT: "terminate called without an active exception") after a run that succeeded. After a
    failure no peer waits: the group goes down at once."""
    try:
        if not trainer.failed:
            dist.barrier()
        dist.destroy_process_group()
    except (RuntimeError, ValueError):   # a peer already gone: nothing left to wait for
        pass


def exit_process(status):
    """End a process that joined a process group with `status` (sys.exit's argument), without the
    interpreter's finalization, after the atexit handlers (finish_group among them): a gloo worker
    thread can still hold the last reference to a tensor of the last collective, and when it takes
    the GIL to drop it while the interpreter finalizes, the process aborts (SIGABRT, "terminate called
    without an active exception", core dump: ~AsyncBarrierWork in ProcessGroupGloo::runLoop, then
    take_gil -> pthread_exit through a noexcept destructor) after a run that succeeded. About one
    torchrun job in 15 did on a busy machine. Returns at once in a process that joined none."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    atexit._run_exitfuncs()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)   # the handler's line would now be an exception here
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):   # a reader gone, or a stream closed: nothing left to say
            pass
    os._exit(0 if status is None else status if isinstance(status, int) else 1)


class TorchTrainer(core.Trainer):
    """core.Trainer's steps, made by a torch module: the same constructor, state and cursor."""

    def __init__(self, model, batch_size, seq_len, optimizer="adam", clip_value=0.0, clip_norm=0.0, seed=0,
                 carry_state=True, device="cpu", **hyper):
        super().__init__(model, batch_size, seq_len, optimizer, clip_value, clip_norm, seed, carry_state, **hyper)
        self.device = device_for(device)
        self.net = mt.module_for(model.config).to(self.device)
        self.update = Update(self.net.parameters(), optimizer, clip_value, clip_norm, **hyper)
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if batch_size % self.world:
            raise UserError(f"--batch-size {batch_size} cannot be shared evenly among {self.world} processes; give a "
                            "multiple of their number (torchrun's --nproc-per-node times --nnodes)")
        self.stepper = self.net
        if self.world > 1:   # the same weights in every process: each built them from the same seed or file
            if not dist.is_initialized():
                join_group("nccl" if self.device.type == "cuda" else "gloo")
                atexit.register(finish_group, self)
                signal.signal(signal.SIGTERM, self.terminated)   # torchrun's word that a peer ended
            self.stepper = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
            self.stepper.cfg = self.net.cfg
        self.carried = None   # the torch side's carried state, or None: zeros
        self.failed = False   # a peer of the job stopped
        self.load()

    @classmethod
    def of(cls, trainer, threads=0, device="auto"):
        """A TorchTrainer with core.Trainer `trainer`'s model, settings and state (a fresh run's, or
        a checkpoint's to resume); threads: torch's intra-op threads (0: its default); device: as
        --device."""
        if threads:
            torch.set_num_threads(threads)
        hyper = {name: float(getattr(trainer.opt, name)) for name in core.HYPERPARAMETERS}
        out = cls(trainer.model, trainer.B, trainer.T, trainer.optimizer, float(trainer.opt.clip_value),
                  float(trainer.opt.clip_norm), 0, trainer.carry_state, device, **hyper)
        out.set_state(trainer.get_state())
        return out

    # ---- the two sides

    def load(self):
        """The torch side from the numpy side (after construction, set_state or a checkpoint)."""
        names = {torch_name(n): n for n in self.model.tensors}
        as_file = lambda flat: {t: torch.from_numpy(self.model.views(flat)[n].copy()) for t, n in names.items()}  # noqa: E731
        self.net.load_state_dict(as_file(self.model.params), strict=True)
        for moments, flat in ((self.update.m, self.m), (self.update.v, self.v)):
            for dst, src in zip(moments, module_layout(self.net, as_file(flat))):
                dst.copy_(src)
        self.update.step_count = self.steps
        mine = self.state[:, :, self.streams()]   # this process's streams
        self.carried = None if not np.any(mine) else self.torch_state(mine)

    def local_flush(self):
        """The numpy side from the torch side: parameters, moments and carried state (the step count
        is kept in step with every step)."""
        names = {torch_name(n): n for n in self.model.tensors}
        for flat, values in ((self.model.params, [p.detach() for p in self.net.parameters()]),
                             (self.m, self.update.m), (self.v, self.update.v)):
            views = self.model.views(flat)
            for t, tensor in file_layout(self.net, values).items():
                views[names[t]][...] = tensor.cpu().numpy()
        if self.carried is not None:
            mine = torch.from_numpy(self.numpy_state(self.carried)).to(self.device)
            if self.world > 1:
                parts = [torch.zeros_like(mine) for _ in range(self.world)]
                dist.all_gather(parts, mine)
                mine = torch.cat(parts, dim=2)
            self.state[...] = mine.cpu().numpy()

    def streams(self):
        """This process's share of the B streams (or records)."""
        n = self.B // self.world
        return slice(self.rank * n, (self.rank + 1) * n)

    def torch_state(self, state):
        """(L, S, B, H) numpy -> nn.LSTM's (h, c) or nn.GRU's h, each (L, B, H)."""
        t = torch.from_numpy(np.ascontiguousarray(state)).to(self.device)
        return (t[:, 0].contiguous(), t[:, 1].contiguous()) if t.shape[1] == 2 else t[:, 0].contiguous()

    @staticmethod
    def numpy_state(carried):
        parts = carried if isinstance(carried, tuple) else (carried,)
        return np.stack([p.detach().cpu().numpy() for p in parts], axis=1)

    # ---- core.Trainer's steps, made in torch

    def step(self, batch):
        return self.together(self.local_step, batch)

    def flush(self):
        self.together(self.local_flush)

    def together(self, work, *args):
        """work(*args), whose collectives fail when another process of the job has stopped (killed,
        or failed) or does not answer within TIMEOUT: then a UserError that says so, in every
        process left, rather than a hang or a traceback."""
        try:
            return work(*args)
        except RuntimeError as e:
            if self.world == 1:
                raise
            self.stopped(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)

    def terminated(self, signum, frame):
        """torchrun stops the job's other processes with SIGTERM when one ends: a line, not a bare exit."""
        self.stopped("torchrun stopped this one with SIGTERM")

    def stopped(self, why):
        self.failed = True
        raise UserError(f"process {self.rank} of {self.world}: another process of this job stopped ({why}); "
                        "relaunch the job with --resume to continue from the last checkpoint") from None

    def local_step(self, batch):
        if not self.carry_state:
            self.reset_state()
        self.update.h["lr"] = self.lr
        for p in self.net.parameters():
            p.grad = None
        self.net.train()
        torch.manual_seed(int(np.random.SeedSequence([self.rng.state, self.steps, self.rank]).generate_state(1, np.uint64)[0]))
        part = mt.batch_part(self.net.cfg, batch, self.rank, self.world) if self.world > 1 else batch
        total, count, state = mt.batch_loss(self.stepper, part, self.carried if self.carry_state else None)
        count = self.summed(float(count))
        loss = total if getattr(self.net.cfg, "reduction", "mean") == "sum" else total / count
        (loss * self.world).backward()   # DDP's mean over the processes of this: the sum of theirs
        loss = self.summed(float(loss.detach()))
        done, norm = self.update.step(torch.tensor(loss))
        if not done:
            raise core.NonFiniteError(core.lib.MINRNN_ERR_NONFINITE, "training step")
        if self.carry_state and state is not None:
            self.carried = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        self.opt.step = self.update.step_count
        return loss, norm

    def summed(self, x):
        """x summed over the processes (x itself in one)."""
        if self.world == 1:
            return x
        t = torch.tensor([x], dtype=torch.float64, device=self.device)   # NCCL reduces only what is on a GPU
        dist.all_reduce(t)
        return float(t[0])

    def reset_state(self):
        super().reset_state()
        self.carried = None

    def get_state(self):
        self.flush()
        return super().get_state()

    def set_state(self, s):
        super().set_state(s)
        self.load()
