"""The recipe behind the bundled tiny model (gen3d/weights/tiny): one resumable script; every stage
runs on CPU, and dit-long / dit-long-2 on a GPU when there is one (the committed runs did).

    python tools/recipe_tiny.py [--root runs/tiny] [--threads 2]
        [--stages data vae export-vae eval-vae dit data-extra dit-finetune pack dit-long export-dit
                  dit-long-2 export-dit-2 vae-decoder export-vae-decoder vae-decoder-2 export-vae-decoder-2
                  bank vae-decoder-gen export-vae-decoder-gen bank-2 vae-decoder-gen-2
                  export-vae-decoder-gen-2 data-extra-2 pack-2 dit-long-3 vae-decoder-3
                  export-vae-decoder-3 vae-decoder-3b export-vae-decoder-3b bank-3 vae-decoder-gen-3
                  export-vae-decoder-gen-3 eval-dit examples]

Stages (each skips what is already done, so re-running after an interruption resumes):
  data       procedural shapes (train seeds, every family) + the real meshes of ../shared/data
             -> `gen3d data prepare` into ROOT/prepared/train; val seeds -> ROOT/prepared/val
  vae        `gen3d train vae --config configs/vae/tiny.yaml` on ROOT/prepared/train (validated on
             ROOT/prepared/val); resumes from the run's last checkpoint
  export-vae the EMA weights as fp16 into gen3d/weights/tiny/vae
  eval-vae   `gen3d eval vae` of the committed files on val procedural shapes and the val real meshes
  dit        `gen3d train dit --config configs/dit/tiny.yaml` on latents of the committed VAE (cached in
             the run) and the prepared views -> ROOT/dit (phase one)
  data-extra 1,200 more procedural train seeds (600..1799) -> `gen3d data prepare` into
             ROOT/prepared/train_extra (prepared apart, so the VAE's data above stays as it was)
  dit-finetune `gen3d train dit --config configs/dit/tiny_finetune.yaml --init-from ROOT/dit/model` on
             ROOT/prepared/train + ROOT/prepared/train_extra -> ROOT/dit_finetune (phase two)
  pack       `gen3d train pack` of the phase-two set (ROOT/prepared/train + train_extra, validated on
             ROOT/prepared/val) -> ROOT/dit_pack.npz (43 MiB): all the DiT's training reads, in one file
  dit-long   phase three: `gen3d train dit --config configs/dit/tiny_long.yaml --data ROOT/dit_pack.npz
             --init-from ROOT/dit_finetune/model` (batch 256, 2,000 steps) -> ROOT/dit_long (the committed
             run: one H200 through tools/train_dit_timed.py, 340 s beside two other runs, starting from
             the fp16 export of phase two; on 2 CPU cores about 6 hours, estimated from phase one's
             0.04 s per sample)
  export-dit the phase-three DiT's EMA weights as fp16 into gen3d/weights/tiny/dit, and
             gen3d/weights/tiny/pipeline.json
  dit-long-2 phase four: the same training again (configs/dit/tiny_long_2.yaml, 1,900 steps) --init-from
             ROOT/dit_long/model -> ROOT/dit_long_2 (the committed run: one H200, 255 s, starting from
             the fp16 export of phase three)
  export-dit-2 the phase-four DiT (the committed one) into gen3d/weights/tiny/dit, and pipeline.json
  vae-decoder the committed VAE's decoder fine-tuned with its encoder frozen (configs/vae/tiny_decoder.yaml)
             on ROOT/prepared/train + train_extra -> ROOT/vae_decoder (phase two of the VAE)
  export-vae-decoder its EMA weights as fp16 into gen3d/weights/tiny/vae (the encoder, so the DiT's
             latents, unchanged)
  vae-decoder-2 phase three of the VAE: the phase-two VAE's decoder fine-tuned again, encoder frozen
             (configs/vae/tiny_decoder_2.yaml) -> ROOT/vae_decoder_2 (the committed run started from
             the fp16 export of phase two, as dit-long did)
  export-vae-decoder-2 its EMA weights as fp16 into gen3d/weights/tiny/vae
  bank       `gen3d train bank`: the committed model's DiT samples of its training set (ROOT/prepared/train
             + train_extra, 4 views each, the generation defaults) -> ROOT/generated.npz
  vae-decoder-gen phase four of the VAE: phase three's decoder fine-tuned on its encoder's latents and
             on the bank's (configs/vae/tiny_decoder_gen.yaml, `--generated ROOT/generated.npz`), encoder
             frozen -> ROOT/vae_decoder_gen (the committed run started from the fp16 export of phase three)
  export-vae-decoder-gen its EMA weights as fp16 into gen3d/weights/tiny/vae
  bank-2     a second bank, new seeds (200,000 on), from the model with the phase-four decoder (its turns
             read by that VAE) -> ROOT/generated_2.npz
  vae-decoder-gen-2 phase five of the VAE: phase four's decoder fine-tuned the same way on the second bank
             (configs/vae/tiny_decoder_gen.yaml, `--generated ROOT/generated_2.npz`) -> ROOT/vae_decoder_gen_2
             (the committed run started from the fp16 export of phase four)
  export-vae-decoder-gen-2 its EMA weights as fp16 into gen3d/weights/tiny/vae
  data-extra-2 1,000 more procedural train seeds (1800..2799) -> ROOT/prepared/train_extra_2 (729 train
             assets once duplicates are dropped)
  pack-2     the phase-two set plus train_extra_2 (2,065 assets), latents as float16 -> ROOT/dit_pack_2.npz
             (40.8 MiB: small enough to travel to a GPU machine)
  dit-long-3 phase five of the DiT: configs/dit/tiny_long_3.yaml --init-from ROOT/dit_long_2/model (the
             phase-four model) on ROOT/dit_pack_2.npz -> ROOT/dit_long_3 (a CPU run, no GPU being lent:
             4,094 s; worse on the held-out shapes than phase four, so not exported or committed)
  vae-decoder-3 phase six of the VAE: phase five's decoder fine-tuned on its encoder's latents of the DiT's
             training set, cups 3x and chairs and tables 2x per epoch (configs/vae/tiny_decoder_3.yaml),
             encoder frozen -> ROOT/vae_decoder_3 (the committed run started from the fp16 export of phase five)
  export-vae-decoder-3 its EMA weights as fp16 into gen3d/weights/tiny/vae
  vae-decoder-3b phase six continued: 1,200 more steps at peak lr 1e-4, same data and repeats
             (configs/vae/tiny_decoder_3b.yaml) -> ROOT/vae_decoder_3b (the committed run started from the
             fp16 export of vae-decoder-3)
  export-vae-decoder-3b its EMA weights as fp16 into gen3d/weights/tiny/vae
  bank-3     a third bank, new seeds (300,000 on), 2 views per asset, from the model with the continued
             phase-six decoder -> ROOT/generated_3.npz
  vae-decoder-gen-3 phase seven of the VAE: the continued phase-six decoder fine-tuned on the third bank and the
             encoder's latents with the same family repeats (configs/vae/tiny_decoder_gen_3.yaml,
             `--generated ROOT/generated_3.npz`), encoder frozen -> ROOT/vae_decoder_gen_3 (the committed run
             started from the fp16 export of vae-decoder-3b)
  export-vae-decoder-gen-3 its EMA weights as fp16 into gen3d/weights/tiny/vae
  eval-dit   tools/bench/image_to_3d.py on the committed model: val procedural seeds and val real
             meshes against the retrieval (over the DiT's whole training set) and mean-shape baselines
             -> ROOT/eval_image_to_3d.json
  examples   data/examples/{mug,chair,vase,spot}.png from the prepared views (RGB + alpha)

The CPU budget of each stage is appended to ROOT/budget.jsonl (wall seconds, machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SHARED_MESHES = REPO.parent / "shared" / "data" / "meshes"
TRAIN_SHAPES = 600  # procedural train seeds, cycling through every family
VAL_SHAPES = 50  # procedural val seeds (5 per family)
EXTRA_TRAIN_SHAPES = 1200  # more procedural train seeds (after the first TRAIN_SHAPES) for the DiT's phase two
EXTRA_TRAIN_SHAPES_2 = 1000  # a third lot (seeds 1800..2799) for the DiT's phase five
WEIGHTS = REPO / "gen3d" / "weights" / "tiny"


def log_budget(root: Path, stage: str, seconds: float, **extra) -> None:
    row = dict(stage=stage, seconds=round(seconds, 1), machine=platform.machine(), cores=os.cpu_count(),
               date=time.strftime("%Y-%m-%d %H:%M"), **extra)
    with open(root / "budget.jsonl", "a") as stream:
        stream.write(json.dumps(row) + "\n")


def gen3d(*args: str) -> None:
    """Run a gen3d command in a child process (the same commands a user types)."""
    command = [sys.executable, "-m", "gen3d.cli", *args]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO)


def stage_data(root: Path, threads: int) -> None:
    from gen3d.geometry.procedural import FAMILIES, write_procedural

    sources = root / "sources"
    for split, count in (("train", TRAIN_SHAPES), ("val", VAL_SHAPES)):
        folder = sources / split / "procedural"
        if not (folder / "shapes.jsonl").exists():
            write_procedural(folder, list(FAMILIES), count, seed=0, split=split)
    real = sources / "train" / "real"  # a copy outside the repository (the job does not follow symlinks)
    if SHARED_MESHES.is_dir() and not real.exists():
        shutil.copytree(SHARED_MESHES, real)
    for split in ("train", "val"):
        gen3d("data", "prepare", str(sources / split), str(root / "prepared" / split), "--workers", str(threads))


def stage_vae(root: Path, threads: int) -> None:
    gen3d("--threads", str(threads), "train", "vae", "--config", "configs/vae/tiny.yaml",
          "--data", str(root / "prepared" / "train"), "--val-data", str(root / "prepared" / "val"),
          "--out", str(root / "vae"))


def finetune_decoder(root: Path, threads: int, config: str, start: str, out: str, *extra: str) -> None:
    """`gen3d train vae` on the DiT's whole training set from the VAE run ROOT/start, its encoder frozen by `config`."""
    gen3d("--threads", str(threads), "train", "vae", "--config", config,
          "--data", str(root / "prepared" / "train"), str(root / "prepared" / "train_extra"),
          "--val-data", str(root / "prepared" / "val"), "--init-from", str(root / start / "model"),
          "--out", str(root / out), *extra)


def stage_vae_decoder(root: Path, threads: int) -> None:
    """Phase two of the VAE: its decoder fine-tuned on the DiT's whole training set, encoder frozen."""
    finetune_decoder(root, threads, "configs/vae/tiny_decoder.yaml", "vae", "vae_decoder")


def stage_vae_decoder_2(root: Path, threads: int) -> None:
    """Phase three of the VAE: phase two's decoder trained longer at a lower rate, encoder still frozen."""
    finetune_decoder(root, threads, "configs/vae/tiny_decoder_2.yaml", "vae_decoder", "vae_decoder_2")


def stage_vae_decoder_3(root: Path, threads: int) -> None:
    """Phase six of the VAE: phase five's decoder on the DiT's training set, the worst-reconstructed
    families repeated (the config's data.repeat), encoder frozen."""
    finetune_decoder(root, threads, "configs/vae/tiny_decoder_3.yaml", "vae_decoder_gen_2", "vae_decoder_3")


def stage_vae_decoder_3b(root: Path, threads: int) -> None:
    """Phase six continued: 1,200 more steps at a lower learning rate, same data and repeats."""
    finetune_decoder(root, threads, "configs/vae/tiny_decoder_3b.yaml", "vae_decoder_3", "vae_decoder_3b")


def stage_bank(out: str, seed: int, root: Path, threads: int, views: int = 4) -> None:
    """The committed model's own samples of its training set, for the generator-aware decoder phases."""
    gen3d("--threads", str(threads), "train", "bank", "--data", str(root / "prepared" / "train"),
          str(root / "prepared" / "train_extra"), "--seed", str(seed), "--views", str(views),
          "--out", str(root / out))


def finetune_decoder_on_bank(start: str, out: str, bank: str, root: Path, threads: int,
                             config: str = "configs/vae/tiny_decoder_gen.yaml") -> None:
    """Phases four, five and seven of the VAE: the decoder trained on the DiT's samples too, encoder frozen."""
    finetune_decoder(root, threads, config, start, out, "--generated", str(root / bank))


def export_vae(run: str, root: Path, threads: int) -> None:
    """The VAE run ROOT/run's EMA weights as fp16 into gen3d/weights/tiny/vae. The decoder phases keep the
    encoder frozen, so exporting them changes the decoder only: the DiT's latents stay as they were."""
    gen3d("train", "export", str(root / run), "--out", str(WEIGHTS / "vae"), "--fp16")


def stage_eval_vae(root: Path, threads: int) -> None:
    val_meshes = sorted(str(p) for p in (root / "sources" / "val" / "procedural").glob("*.obj"))
    gen3d("--threads", str(threads), "eval", "vae", "--meshes", *val_meshes, "--json",
          "--output", str(root / "eval_vae_procedural.json"))
    real = [str(SHARED_MESHES / name) for name in ("cow.obj", "teapot.obj", "rabbit.obj")]
    gen3d("--threads", str(threads), "eval", "vae", "--meshes", *real, "--json",
          "--output", str(root / "eval_vae_real.json"))


def stage_dit(root: Path, threads: int) -> None:
    gen3d("--threads", str(threads), "train", "dit", "--config", "configs/dit/tiny.yaml",
          "--data", str(root / "prepared" / "train"), "--val-data", str(root / "prepared" / "val"),
          "--vae", str(WEIGHTS / "vae"), "--out", str(root / "dit"))


def stage_data_extra(name: str, first_seed: int, count: int, root: Path, threads: int) -> None:
    """`count` more procedural train seeds from `first_seed` -> ROOT/prepared/NAME (prepared apart)."""
    from gen3d.geometry.procedural import FAMILIES, write_procedural

    folder = root / "sources" / name / "procedural"
    if not (folder / "shapes.jsonl").exists():
        write_procedural(folder, list(FAMILIES), count, seed=first_seed, split="train")
    gen3d("data", "prepare", str(root / "sources" / name), str(root / "prepared" / name), "--workers", str(threads))


def stage_dit_finetune(root: Path, threads: int) -> None:
    gen3d("--threads", str(threads), "train", "dit", "--config", "configs/dit/tiny_finetune.yaml",
          "--data", str(root / "prepared" / "train"), str(root / "prepared" / "train_extra"),
          "--val-data", str(root / "prepared" / "val"), "--vae", str(WEIGHTS / "vae"),
          "--init-from", str(root / "dit" / "model"), "--out", str(root / "dit_finetune"))


def stage_pack(out: str, sets: tuple[str, ...], flags: tuple[str, ...], root: Path, threads: int) -> None:
    """`gen3d train pack` of the train splits of ROOT/prepared/<sets> (validated on ROOT/prepared/val) ->
    ROOT/out; a later pack starts from the latent cache of the first, ROOT/dit_pack.npz, when present."""
    cache, first_cache = root / f"{out}.latents.safetensors", root / "dit_pack.npz.latents.safetensors"
    if first_cache.is_file() and not cache.is_file():
        shutil.copy(first_cache, cache)
    gen3d("--threads", str(threads), "train", "pack", "--config", "configs/dit/tiny_long.yaml",
          "--data", *(str(root / "prepared" / name) for name in sets), "--val-data", str(root / "prepared" / "val"),
          "--vae", str(WEIGHTS / "vae"), *flags, "--out", str(root / out))


def train_dit_from_pack(config: str, init: str, run: str, root: Path, threads: int,
                        pack: str = "dit_pack.npz") -> None:
    """Phases three to five: `--init-from` the run before, from a training pack (phases three and four: a
    config whose steps are what fitted the GPU run's time budget)."""
    gen3d("--threads", str(threads), "train", "dit", "--config", config, "--data", str(root / pack),
          "--init-from", str(root / init / "model"), "--out", str(root / run))


# Generation defaults of the bundled model (docs/image_to_3d.md): UniPC x10 scores like DPM++(2M) x20
# and DDIM x50 in the benchmark with fewer evaluations; 4 samples scored <= 1 sample on 30 held-out
# train-split "val" procedural shapes (not the benchmark's queries) and in the benchmark; guidance 1.0
# (no guidance: one DiT evaluation per step) scored best of 0.75-3.0 on 40 held-out procedural shapes;
# fitting the output's width to the input's silhouette ratio scored better than the model's own width there.
TINY_DEFAULTS = {"sampler": "unipc_bh2", "steps": 10, "guidance": 1.0, "samples": 4, "orient": "front",
                 "width": "fit", "carve": "silhouette"}


def export_dit(run: str, root: Path, threads: int) -> None:
    """The DiT run ROOT/run's EMA weights as fp16 into gen3d/weights/tiny/dit, and its pipeline.json."""
    from gen3d.pipelines.image_to_3d import write_pipeline_spec

    gen3d("train", "export", str(root / run), "--out", str(WEIGHTS / "dit"), "--fp16")
    write_pipeline_spec(WEIGHTS, "gen3d-tiny", TINY_DEFAULTS)


def stage_eval_dit(root: Path, threads: int) -> None:
    command = [sys.executable, str(REPO / "tools" / "bench" / "image_to_3d.py"), "--root", str(root),
               "--output", str(root / "eval_image_to_3d.json")]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": str(threads)})


# data/examples: (prepared set, source, view) -> file; view 1 of Spot shows its side (NOTICE).
EXAMPLES = {"mug.png": ("val", "procedural/mug_1000007.obj", 0),
            "chair.png": ("val", "procedural/chair_1000009.obj", 0),
            "vase.png": ("val", "procedural/vase_1000005.obj", 0),
            "spot.png": ("train", "real/spot.obj", 1)}


def stage_examples(root: Path, threads: int) -> None:
    """The shipped inputs of `gen3d generate`: prepared views (RGB, alpha from the coverage mask)."""
    from gen3d.train.dit import view_rgba
    from gen3d.train.vae import prepared_assets

    for name, (prepared, source, view) in EXAMPLES.items():
        (asset,) = prepared_assets(root / "prepared" / prepared, None, (source,))
        view_rgba(asset, view).save(REPO / "data" / "examples" / name, optimize=True)
        print(f"wrote data/examples/{name} ({source}, view {view})", flush=True)


RUNNERS = {"data": stage_data, "vae": stage_vae, "export-vae": partial(export_vae, "vae"),
           "eval-vae": stage_eval_vae, "dit": stage_dit,
           "data-extra": partial(stage_data_extra, "train_extra", TRAIN_SHAPES, EXTRA_TRAIN_SHAPES),
           "dit-finetune": stage_dit_finetune,
           "pack": partial(stage_pack, "dit_pack.npz", ("train", "train_extra"), ()),
           "dit-long": partial(train_dit_from_pack, "configs/dit/tiny_long.yaml", "dit_finetune", "dit_long"),
           "export-dit": partial(export_dit, "dit_long"),
           "dit-long-2": partial(train_dit_from_pack, "configs/dit/tiny_long_2.yaml", "dit_long", "dit_long_2"),
           "export-dit-2": partial(export_dit, "dit_long_2"), "vae-decoder": stage_vae_decoder,
           "export-vae-decoder": partial(export_vae, "vae_decoder"), "vae-decoder-2": stage_vae_decoder_2,
           "export-vae-decoder-2": partial(export_vae, "vae_decoder_2"),
           "bank": partial(stage_bank, "generated.npz", 100_000),
           "vae-decoder-gen": partial(finetune_decoder_on_bank, "vae_decoder_2", "vae_decoder_gen", "generated.npz"),
           "export-vae-decoder-gen": partial(export_vae, "vae_decoder_gen"),
           "bank-2": partial(stage_bank, "generated_2.npz", 200_000),
           "vae-decoder-gen-2": partial(finetune_decoder_on_bank, "vae_decoder_gen", "vae_decoder_gen_2",
                                        "generated_2.npz"),
           "export-vae-decoder-gen-2": partial(export_vae, "vae_decoder_gen_2"),
           "data-extra-2": partial(stage_data_extra, "train_extra_2", TRAIN_SHAPES + EXTRA_TRAIN_SHAPES,
                                   EXTRA_TRAIN_SHAPES_2),
           "pack-2": partial(stage_pack, "dit_pack_2.npz", ("train", "train_extra", "train_extra_2"),
                             ("--fp16-latents",)),
           "dit-long-3": partial(train_dit_from_pack, "configs/dit/tiny_long_3.yaml", "dit_long_2", "dit_long_3",
                                 pack="dit_pack_2.npz"),
           "vae-decoder-3": stage_vae_decoder_3, "export-vae-decoder-3": partial(export_vae, "vae_decoder_3"),
           "vae-decoder-3b": stage_vae_decoder_3b, "export-vae-decoder-3b": partial(export_vae, "vae_decoder_3b"),
           "bank-3": partial(stage_bank, "generated_3.npz", 300_000, views=2),
           "vae-decoder-gen-3": partial(finetune_decoder_on_bank, "vae_decoder_3b", "vae_decoder_gen_3",
                                        "generated_3.npz", config="configs/vae/tiny_decoder_gen_3.yaml"),
           "export-vae-decoder-gen-3": partial(export_vae, "vae_decoder_gen_3"),
           "eval-dit": stage_eval_dit,
           "examples": stage_examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / "runs" / "tiny")
    parser.add_argument("--stages", nargs="+", choices=list(RUNNERS), default=list(RUNNERS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    for stage in args.stages:
        start = time.perf_counter()
        RUNNERS[stage](args.root, args.threads)
        log_budget(args.root, stage, time.perf_counter() - start, threads=args.threads)


if __name__ == "__main__":
    main()
