"""Seal a 1 GiB file (ASiC-E + CAdES + CMS) against `openssl cms -encrypt` of the same file.

ipunkt zips, digests, signs and encrypts; OpenSSL only encrypts (``-binary -aes256``, OAEP
SHA-256 key transport), so OpenSSL is the floor to compare with. OpenSSL runs twice per round:
as the brief's command (which buffers the whole input in memory) and with ``-stream``; the
ratio is taken against the faster of the two. ipunkt's peak RSS is measured above its idle RSS
(after a warm-up seal) from /proc. Rounds alternate the contenders and keep each one's best
time, because the machine is shared. A last check has OpenSSL decrypt ipunkt's output.

Usage: ``python bench/run.py seal [--size-mib N] [--rounds N] [--dir PATH]``. Targets: ratio
(ipunkt speed / OpenSSL speed) >= 0.5, peak RSS < 64 MiB above idle.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from ipunkt.package.seal import Document, seal
from ipunkt.package.testcerts import make_pki, write_pki

SENDER, RECEIVER = "910077473", "910075918"
MIB = 1 << 20


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def make_input(path: Path, size: int) -> None:
    """Incompressible data (PDFs and scans mostly are), written once, then read from cache."""
    block = os.urandom(64 * MIB)
    with path.open("wb") as out:
        written = 0
        while written < size:
            piece = block[: min(len(block), size - written)]
            out.write(piece)
            written += len(piece)


def run_openssl(arguments: list[str]) -> tuple[float, int]:
    """Wall time and the child's peak RSS in KiB, sampled from /proc while it runs.

    (``wait4``'s ``ru_maxrss`` would count the Python parent's pages the child had before
    ``exec``.)
    """
    start = time.perf_counter()
    process = subprocess.Popen(arguments, stderr=subprocess.PIPE)
    peak = 0
    status = Path(f"/proc/{process.pid}/status")
    while process.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        time.sleep(0.02)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        errors = process.stderr.read().decode() if process.stderr else ""
        raise SystemExit(f"openssl failed: {errors}")
    return elapsed, peak


def run_ipunkt(source: Path, target: Path, pki, idle_kib: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    start = time.perf_counter()
    with target.open("wb") as out:
        seal(
            [Document.from_path(source)],
            key=pki[SENDER],
            recipient=pki[RECEIVER].certificate,
            out=out,
        )
    elapsed = time.perf_counter() - start
    return elapsed, status_kib("VmHWM") - idle_kib


def cipher_threads_speedup(size: int = 256 * MIB) -> float:
    """How much two threads of AES-256-CBC beat one: >1.5 means cryptography frees the GIL."""
    data = os.urandom(MIB)

    def encrypt() -> None:
        encryptor = Cipher(algorithms.AES(os.urandom(32)), modes.CBC(os.urandom(16))).encryptor()
        buffer = bytearray(MIB + 16)
        for _ in range(size // MIB):
            encryptor.update_into(data, buffer)

    start = time.perf_counter()
    encrypt()
    encrypt()
    sequential = time.perf_counter() - start
    threads = [threading.Thread(target=encrypt) for _ in range(2)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sequential / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--dir", type=Path, default=None, help="Where to put the test files.")
    args = parser.parse_args()
    size = args.size_mib * MIB

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="ipunkt-bench-") as folder:
        work = Path(folder)
        pki = make_pki(SENDER, RECEIVER)
        files = write_pki(pki, work / "keys", password=b"bench")
        source = work / "document.bin"
        make_input(source, size)
        recipient = str(files[RECEIVER].certificate)
        openssl = [
            "openssl", "cms", "-encrypt", "-binary", "-aes256", "-outform", "DER",
            "-in", str(source), "-out", str(work / "openssl.cms"), "-recip", recipient,
            "-keyopt", "rsa_padding_mode:oaep", "-keyopt", "rsa_oaep_md:sha256",
        ]  # fmt: skip

        with open(os.devnull, "wb") as nowhere:
            seal([Document("warm-up.txt", "text/plain", lambda: [b"warm"])], key=pki[SENDER],
                 recipient=pki[RECEIVER].certificate, out=nowhere)  # fmt: skip
        idle_kib = status_kib("VmRSS")

        best = {"openssl": float("inf"), "openssl_stream": float("inf"), "ipunkt": float("inf")}
        openssl_rss = {"openssl": 0, "openssl_stream": 0}
        ipunkt_peak_kib = 0
        for round_number in range(args.rounds):
            runs = [("openssl_stream", [*openssl, "-stream"]), ("ipunkt", None)]
            if round_number == 0:
                runs.insert(0, ("openssl", openssl))
            for name, command in runs:
                if command is None:
                    elapsed, peak = run_ipunkt(source, work / "ipunkt.cms", pki, idle_kib)
                    ipunkt_peak_kib = max(ipunkt_peak_kib, peak)
                else:
                    elapsed, rss = run_openssl(command)
                    openssl_rss[name] = max(openssl_rss[name], rss)
                    (work / "openssl.cms").unlink()
                best[name] = min(best[name], elapsed)
                print(f"round {round_number + 1}: {name:<15} {elapsed:6.2f} s")

        check = subprocess.run(
            ["openssl", "cms", "-decrypt", "-binary", "-inform", "DER",
             "-in", str(work / "ipunkt.cms"), "-out", str(work / "asic.zip"),
             "-recip", recipient, "-inkey", str(files[RECEIVER].private_key)],
            capture_output=True, check=False,
        )  # fmt: skip
        decrypts = check.returncode == 0 and (work / "asic.zip").stat().st_size > size

    speedup = cipher_threads_speedup()
    baseline = min(best["openssl"], best["openssl_stream"])
    ratio = baseline / best["ipunkt"]
    peak_mib = ipunkt_peak_kib / 1024
    gib = size / (1 << 30)

    def line(label: str, seconds: float, memory: str) -> None:
        print(f"{label:<32}{seconds:6.2f} s  {gib / seconds:5.2f} GiB/s  peak RSS {memory}")

    print()
    line("openssl cms -encrypt", best["openssl"], f"{openssl_rss['openssl'] / 1024:.0f} MiB")
    line(
        "openssl cms -encrypt -stream",
        best["openssl_stream"],
        f"{openssl_rss['openssl_stream'] / 1024:.0f} MiB",
    )
    line(
        "ipunkt seal (ASiC-E, CAdES, CMS)",
        best["ipunkt"],
        f"{peak_mib:.1f} MiB above idle ({idle_kib / 1024:.0f} MiB)",
    )
    print(f"ratio, ipunkt speed / fastest OpenSSL speed: {ratio:.2f} (target >= 0.5)")
    print(f"ratio against the buffering OpenSSL command:  {best['openssl'] / best['ipunkt']:.2f}")
    print(f"AES-256-CBC in two threads vs one: {speedup:.2f}x (above 1 means the GIL is released)")
    print(f"openssl cms -decrypt opens ipunkt's package: {decrypts}")
    print(json.dumps({
        "bench": "seal",
        "size_mib": args.size_mib,
        "rounds": args.rounds,
        "openssl_s": round(best["openssl"], 3),
        "openssl_stream_s": round(best["openssl_stream"], 3),
        "ipunkt_s": round(best["ipunkt"], 3),
        "ratio": round(ratio, 3),
        "ratio_vs_buffered_openssl": round(best["openssl"] / best["ipunkt"], 3),
        "ipunkt_peak_rss_above_idle_mib": round(peak_mib, 1),
        "openssl_peak_rss_mib": round(openssl_rss["openssl"] / 1024, 1),
        "openssl_stream_peak_rss_mib": round(openssl_rss["openssl_stream"] / 1024, 1),
        "aes_two_thread_speedup": round(speedup, 2),
        "openssl_decrypts_ipunkt_output": decrypts,
        "targets_met": ratio >= 0.5 and peak_mib < 64 and decrypts,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
