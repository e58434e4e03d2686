"""Train the model that ships inside the package, on every song of the real-music manifests.

Uses this project's own training code with the default settings (both phases) but for
the hard bank (``SHIPPED``), then writes, into src/reform/models/:

  shipped.pt      the clustering model in float16 (encoder + main decoder), with its
                  normaliser, configuration and feature version
  shipped.json    its card (version, settings, training time), read without torch
  MODEL_CARD.md   data and licences, settings, machine, training time, curves, evaluation
  shipped-curves.png, shipped-metrics.jsonl

    python bench/ship_model.py --manifest DATA/realmusic.tsv DATA/extramusic.tsv --work DATA/ship \
        [--home HOME] [--pretrain-epochs N] [--cluster-epochs N] [--quality DATA/cv/quality.md]

--home trains in a home that already holds every song of the manifests (and no other)
instead of scanning them into WORK/home; --pretrain-epochs and --cluster-epochs cap the
phases (the card gives the epochs each ran);
--quality inserts the cross-validated table written by bench/quality.py (models trained
the same way on the other folds' soundtracks and evaluated on the held-out ones).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import read_manifest  # noqa: E402

from reform import Library  # noqa: E402
from reform.checkpoint import load_bundle, save_bundle  # noqa: E402
from reform.config import FINE_TUNE_BELOW  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# The defaults but for one setting: the shipped model is used on music it never heard, where
# the hard bank (no soft neighbours) found the same song more often at the same p@10 than the
# default's soft neighbours, which are chosen for training on one's own library (docs/method.md 7)
SHIPPED = ["--bank-neighbours", "0"]
OUT = ROOT / "src" / "reform" / "models"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def licences(package: str) -> str:
    """The licences a Debian package's copyright file declares.

    Machine-readable files (DEP-5) name them in ``License:`` fields; older free-form
    files are recognised by the licence text they quote.
    """
    path = Path("/usr/share/doc") / package / "copyright"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(copyright file not found)"
    names = Counter(n.strip() for n in re.findall(r"^License:[ \t]*(\S.*)$", text, re.M))
    if names:
        return ", ".join(name for name, _ in names.most_common())
    found = []
    gpl = re.search(r"GNU General Public License[^.]*?version (\d)", text, re.S)
    if gpl:
        later = re.search(r"any later version|or \(at your option\)", text)
        found.append(f"GPL-{gpl.group(1)}{'+' if later else ''}")
    if re.search(r"Creative Commons", text, re.I) and re.search(r"ShareAlike", text):
        version = re.search(r"Attribution-ShareAlike (\d\.\d)", text)
        found.append(f"CC-BY-SA-{version.group(1) if version else '?'}")
    return ", ".join(found) + " (free-form copyright file)" if found else "see the copyright file"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", nargs="+", required=True, help="realmusic.tsv [extramusic.tsv]")
    parser.add_argument("--work", required=True)
    parser.add_argument("--home", help="a home already holding every song of the manifests, and no other")
    parser.add_argument("--pretrain-epochs", type=int, help="cap on the pretraining epochs")
    parser.add_argument("--cluster-epochs", type=int, help="cap on the clustering epochs")
    parser.add_argument("--quality", help="quality.md from bench/quality.py")
    args = parser.parse_args()
    work = Path(args.work).resolve()
    rows = [r for m in args.manifest for r in read_manifest(m)]
    if args.home:
        home = Path(args.home).resolve()
    else:
        links = work / "links"
        for r in rows:
            target = links / r["group"] / os.path.basename(r["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.symlink(r["path"], target)
        home = work / "home"
        with Library(home) as lib:
            lib.scan(links, progress=True)
    folder = home / "models" / "ship"
    train = [sys.executable, "-m", "reform", "--home", str(home), "-q", "train", "--name", "ship", *SHIPPED]
    if not (folder / "pretrain.pt").exists():
        cap = ["--max-epochs", str(args.pretrain_epochs)] if args.pretrain_epochs else []
        resume = ["--resume"] if (folder / "checkpoint.pt").exists() else []
        subprocess.run(train + ["--phase", "pretrain"] + cap + resume, check=True)
    if not (folder / "model.pt").exists():
        cap = ["--max-epochs", str(args.cluster_epochs)] if args.cluster_epochs else []
        subprocess.run(train + ["--phase", "cluster"] + cap, check=True)

    bundle = load_bundle(folder / "model.pt")
    info = dict(bundle.info)
    info |= {"data": f"{len(rows)} songs of {len({r['group'] for r in rows})} game soundtracks "
                     f"packaged by Debian ({sum(float(r['duration_s']) for r in rows) / 3600:.1f} h)",
             "machine": f"{cpu_name()}, {os.cpu_count()} cores, no GPU"}
    OUT.mkdir(parents=True, exist_ok=True)
    save_bundle(OUT / "shipped.pt", bundle.model, bundle.normaliser, bundle.feature_version, info, half=True)
    shutil.copy(folder / "curves.png", OUT / "shipped-curves.png")
    shutil.copy(folder / "metrics.jsonl", OUT / "shipped-metrics.jsonl")
    card = json.loads((OUT / "shipped.json").read_text())

    packages = {}
    for r in rows:
        packages.setdefault(r["source_package"], Counter())[r["group"]] += 1
    versions = {}
    for manifest in args.manifest:
        listing = Path(manifest).parent / "packages.tsv"
        if listing.exists():
            versions |= dict(line.split("\t") for line in listing.read_text().splitlines()[1:] if "\t" in line)
    lines = ["# The model shipped with ReFORM", "",
             "Recommendations work before any training: `reform embed` uses this model until "
             "`reform train` has trained one on your own library (on a library of fewer than "
             f"{FINE_TUNE_BELOW} songs `reform train` fine-tunes it, where that measured better than "
             "starting from scratch; `--init shipped` or `scratch` chooses).", "",
             "## Data", "", info["data"] + ", installed with `EXTRA=1 shared/realmusic/fetch.sh` "
             "(only the songs of its manifest). The audio is not redistributed; each package's "
             "licences are in `/usr/share/doc/PACKAGE/copyright`:", "",
             "| package | version | songs | licences named in its copyright file |", "|---|---|---|---|"]
    for pkg, groups in sorted(packages.items()):
        lines.append(f"| {pkg} | {versions.get(pkg, '?')} | {sum(groups.values())} | {licences(pkg)} |")
    train_cfg = info.get("train_config", {})
    lines += ["", "## Settings", "",
              f"Version `{card['version']}`, feature version `{card['feature_version']}`.",
              f"Model: {json.dumps(card['model_config'])}.",
              f"Training: {json.dumps(train_cfg)}.",
              f"Epochs: pretraining {info['epochs']['pretrain']}, clustering {info['epochs']['cluster']} (each phase "
              "trained by its own command, so `max_epochs` above is the last one's cap).",
              f"Weights stored in float16: {(OUT / 'shipped.pt').stat().st_size / 2**20:.1f} MiB.", "",
              "## Training time and machine", "",
              f"{info['train_seconds'] / 60:.0f} minutes of training epochs on {info['machine']} "
              f"(finished {info['finished_at']}).", "",
              "## Curves", "", "![training curves](shipped-curves.png)", "",
              "## Evaluation", "",
              "This model was trained on every song of the manifests, so it cannot be evaluated on "
              "held-out soundtracks. The numbers below come from `bench/quality.py`: the same code and "
              "settings, trained on two of three folds of soundtracks and evaluated on the third, for "
              "each fold. They rank songs by the plain cosine; recommendations rank them by a walk over "
              "each query's nearest songs, which gains about 4 points of p@10 here (README, \"How good are "
              "the recommendations\").", ""]
    if args.quality:
        # nest quality.md's headings under this card's "Evaluation"; its note that the labels
        # file also lists the training songs concerns that run, not this card
        for line in Path(args.quality).read_text().splitlines():
            if not line.startswith("note: ") or "not in the library" not in line:
                lines.append("#" + line if line.startswith("#") else line)
    else:
        lines.append("(run `python bench/quality.py` and pass `--quality` to include the table)")
    lines += ["", "Reproduce: `python bench/ship_model.py --manifest DATA/realmusic.tsv DATA/extramusic.tsv "
              f"--work DATA/ship{f' --pretrain-epochs {args.pretrain_epochs}' if args.pretrain_epochs else ''}"
              f"{f' --cluster-epochs {args.cluster_epochs}' if args.cluster_epochs else ''}"
              f"{' --quality DATA/cv/quality.md' if args.quality else ''}`."]
    (OUT / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'shipped.pt'} ({(OUT / 'shipped.pt').stat().st_size / 2**20:.1f} MiB) and the card")


if __name__ == "__main__":
    main()
