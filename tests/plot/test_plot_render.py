# SPDX-License-Identifier: Apache-2.0
"""`alphatop scan --plot DIR` and `alphatop report --html DIR LOG` end to end.

The files they write are parsed as XML (every SVG, also those inline in the pages) and as HTML;
the pages must be self-contained (nothing fetched: no scripts, styles, fonts or images from
elsewhere), deterministic (two runs, same bytes) and must escape hostile layer names. The SVG is
rendered to pixels with rsvg-convert (librsvg, as scripts/deps installs it) and the picture is
checked: not blank, the fitted line and the xmin marker drawn where the SVG puts them, heatmap
cells in their band colour.
"""
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import unittest
import xml.etree.ElementTree as ET
import zlib

import numpy as np

ALPHATOP = os.environ.get("ALPHATOP", "alphatop")
SVG_NS = "{http://www.w3.org/2000/svg}"
HOSTILE = "</title><script>alert(1)</script>&\"'<!--.weight"
VERMILION = (0xD5, 0x5E, 0x00)


def write_safetensors(path, tensors):
    """A safetensors file of float32 tensors, written here independently of alphatop's reader."""
    header, blobs, offset = {}, [], 0
    for name, arr in tensors.items():
        data = np.ascontiguousarray(arr, dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def heavy_tailed(rng, rows, cols):
    """Gaussian weights with Pareto-scaled columns: a heavy-tailed spectrum, as trained layers."""
    return rng.standard_normal((rows, cols)) * rng.pareto(2.5, cols)[None, :]


def write_runlog(path, records):
    """A run log (docs/monitor.md): "ATLOG1\\n", then per JSON record "ATR" 'J' len crc payload."""
    with open(path, "wb") as f:
        f.write(b"ATLOG1\n")
        for rec in records:
            payload = json.dumps(rec, separators=(",", ":")).encode()
            crc = zlib.crc32(b"J" + payload) & 0xFFFFFFFF
            f.write(b"ATRJ" + struct.pack("<II", len(payload), crc) + payload)


def read_png(path):
    """(width, height, rows of (r, g, b) tuples) of an 8-bit RGB or RGBA PNG."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0
            bpp = 4 if ctype == 6 else 3
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * bpp
    prev, rows = bytearray(stride), []
    for y in range(height):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 0xFF
            elif ftype == 2:
                line[i] = (line[i] + b) & 0xFF
            elif ftype == 3:
                line[i] = (line[i] + (a + b) // 2) & 0xFF
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append([tuple(line[x * bpp:x * bpp + 3]) for x in range(width)])
        prev = line
    return width, height, rows


def render(svg_path, png_path):
    exe = shutil.which("rsvg-convert")
    if exe is None:
        raise AssertionError("rsvg-convert is missing: run scripts/deps (package librsvg2-bin)")
    subprocess.run([exe, "-o", png_path, svg_path], check=True)
    return read_png(png_path)


def near(color, want, tol=40):
    return all(abs(a - b) <= tol for a, b in zip(color, want))


class PageParser(html.parser.HTMLParser):
    """Collects tags, attributes and text of a page."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attrs, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend((tag, k, v) for k, v in attrs)

    def handle_data(self, data):
        self.text.append(data)


def run(*args):
    return subprocess.run([ALPHATOP, *args], capture_output=True, text=True, timeout=240)


def files_of(d):
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            out[name] = f.read()
    return out


class Common(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="alphatop-plot-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *names):
        return os.path.join(self.dir, *names)

    def check_page(self, page_path):
        """Parses the page: well formed, nothing fetched, every inline SVG valid XML. Returns the
        parser and the page's text."""
        with open(page_path, encoding="utf-8") as f:
            page = f.read()
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        p = PageParser()
        p.feed(page)
        p.close()
        for tag in ("script", "link", "img", "iframe", "object", "embed", "base"):
            self.assertNotIn(tag, p.tags)
        for tag, key, value in p.attrs:
            self.assertNotIn(key, ("src", "srcset"))
            self.assertFalse(key.startswith("on"), (tag, key))
            if key == "href":
                self.assertNotRegex(value, r"^[a-z]+:|^//", "a link leaves the directory")
                if not value.startswith("#"):
                    self.assertTrue(os.path.exists(os.path.join(os.path.dirname(page_path), value)),
                                    value)
        self.assertNotIn("url(", page)
        self.assertNotIn("@import", page)
        self.assertNotIn("@font-face", page)
        # the only "http" is the SVG namespace, which names and fetches nothing
        self.assertEqual(set(re.findall(r"https?://[^\"' >]*", page)), {"http://www.w3.org/2000/svg"})
        svgs = re.findall(r"<svg .*?</svg>", page, re.S)
        for s in svgs:
            self.assertEqual(ET.fromstring(s).tag, SVG_NS + "svg")
        return p, page, svgs


class ScanPlot(Common):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(7)
        self.ckpt = self.path("model.safetensors")
        write_safetensors(self.ckpt, {
            "fc1.weight": heavy_tailed(rng, 256, 128),
            HOSTILE: heavy_tailed(rng, 128, 64),
            "caf\u00e9/\u00fcber.weight": rng.standard_normal((64, 64)),
            "tiny.weight": rng.standard_normal((8, 4)),
        })

    def test_pictures_page_and_determinism(self):
        out1, out2 = self.path("out1"), self.path("out2")
        r = run("scan", "--plot", out1, self.ckpt)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("index.html (3 ESD pictures)", r.stderr)
        self.assertEqual(run("scan", "--plot", out2, self.ckpt).returncode, 0)
        first, second = files_of(out1), files_of(out2)
        self.assertEqual(first, second, "the same checkpoint gave different bytes")
        svgs = [n for n in first if n.endswith(".svg")]
        self.assertEqual(len(svgs), 3)  # tiny.weight: too few eigenvalues, a row without a picture
        for name in svgs:
            self.assertRegex(name, r"^\d{3}-[A-Za-z0-9._-]+\.svg$")
            root = ET.fromstring(first[name])
            self.assertEqual(root.tag, SVG_NS + "svg")
            self.assertEqual(len(root.findall(f".//{SVG_NS}line[@class='fit']")), 1)
        # the hostile name: escaped, so the parsed text is the name itself and no tag came of it
        p, page, inline = self.check_page(os.path.join(out1, "index.html"))
        self.assertIn(HOSTILE, "".join(p.text))
        self.assertIn("&lt;/title&gt;&lt;script&gt;", page)
        self.assertEqual(len(inline), 4)  # the colour bar and three spectra
        self.assertIn("skipped: too few eigenvalues", "".join(p.text))
        titles = [ET.fromstring(first[n]).find(SVG_NS + "title").text for n in svgs]
        self.assertIn("Eigenvalue spectrum (ESD) of " + HOSTILE, titles)

    def test_rendered_picture(self):
        out = self.path("out")
        self.assertEqual(run("scan", "--plot", out, "--layers", "^fc1", self.ckpt).returncode, 0)
        svg_path = os.path.join(out, "001-fc1.weight.svg")
        root = ET.parse(svg_path).getroot()
        w, h, px = render(svg_path, self.path("fc1.png"))
        self.assertEqual((w, h), (int(root.get("width")), int(root.get("height"))))
        white = sum(1 for row in px for c in row if c == (255, 255, 255))
        self.assertLess(white, 0.9 * w * h, "the picture is (nearly) blank")
        # the fitted line: vermilion pixels all along the segment the SVG gives
        fit = root.find(f".//{SVG_NS}line[@class='fit']")
        x1, y1, x2, y2 = (float(fit.get(k)) for k in ("x1", "y1", "x2", "y2"))
        self.assertGreater(abs(x2 - x1), 100)
        for i in range(1, 20):
            t = i / 20
            x, y = x1 + t * (x2 - x1), y1 + t * (y2 - y1)
            around = [px[int(y) + dy][int(x) + dx] for dy in range(-2, 3) for dx in range(-2, 3)]
            self.assertTrue(any(near(c, VERMILION) for c in around),
                            f"no fitted line at ({x:.0f}, {y:.0f}): {around[12]}")
        # the xmin marker: a dashed vermilion line at its x across the plot
        xm = root.find(f".//{SVG_NS}line[@class='xmin']")
        x, top, bottom = float(xm.get("x1")), float(xm.get("y1")), float(xm.get("y2"))
        hits = sum(near(px[y][round(x)], VERMILION, 60) or near(px[y][round(x) - 1], VERMILION, 60)
                   for y in range(int(top) + 1, int(bottom)))
        self.assertGreater(hits, 0.4 * (bottom - top))
        # away from the marker, that column of the plot is not vermilion
        far = round(x) + 40 if x + 40 < w - 30 else round(x) - 40
        self.assertLess(sum(near(px[y][far], VERMILION, 60) for y in range(int(top) + 1, int(bottom))), 10)

    def test_bad_plot_directory(self):
        blocker = self.path("file")
        open(blocker, "w").close()
        r = run("scan", "--plot", blocker, self.ckpt)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"alphatop scan: --plot {blocker}: not a directory", r.stderr)
        r = run("scan", "--plot", self.path("no", "such"), self.ckpt)
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot create the directory", r.stderr)


class ReportHtml(Common):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(11)
        w = heavy_tailed(rng, 200, 100)
        evals = np.sort(np.linalg.svd(w, compute_uv=False) ** 2)
        self.log = self.path("run.atlog")
        run_id = "r<1>"
        recs = [{"type": "event", "kind": "hello", "run": run_id, "model": "mlp & co",
                 "framework": "c", "host": "box", "pid": 1, "interval": 100, "text": "hello"}]
        self.alphas = {"fc1": [4.0, 3.0, 2.5, 1.8, 1.5], HOSTILE: [7.5, 7.0, None, 6.5, 3.0]}
        for k, step in enumerate(range(100, 600, 100)):
            for name, series in self.alphas.items():
                a = series[k]
                recs.append({"type": "layer", "run": run_id, "step": step, "view": "w", "name": name,
                             "N": 200, "M": 100, "Q": 2.0, "alpha": a, "xmin": float(evals[60]),
                             "D": 0.08, "status": "success" if a is not None else "failed"})
        recs.append({"type": "spectrum", "run": run_id, "step": 500, "view": "w", "name": "fc1",
                     "evals": [float(v) for v in evals]})
        recs.append({"type": "event", "kind": "stop", "run": run_id, "step": 500,
                     "text": "stop <b>requested</b>"})
        write_runlog(self.log, recs)

    def test_page(self):
        out1, out2 = self.path("out1"), self.path("out2")
        r = run("report", "--html", out1, self.log)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("run r<1>", r.stdout)  # the text summary is still printed
        self.assertEqual(run("report", "--html", out2, self.log).returncode, 0)
        self.assertEqual(files_of(out1), files_of(out2), "the same log gave different bytes")
        p, page, svgs = self.check_page(os.path.join(out1, "index.html"))
        text = "".join(p.text)
        self.assertIn("stop <b>requested</b>", text)
        self.assertIn(HOSTILE, text)
        self.assertNotIn("<b>requested", page)
        # colour bar, heatmap, two alpha-over-time plots, one spectrum
        self.assertEqual(len(svgs), 5)
        heat = next(s for s in svgs if "<title>alpha per layer and snapshot" in s)
        cells = ET.fromstring(heat).findall(f".//{SVG_NS}rect[@class='cell']")
        # fc1: 4.0 3.0 2.5 healthy, 1.8 1.5 burnt; the other: 7.5 7.0 raw, a gap, 6.5 raw, 3.0
        self.assertGreaterEqual(len(cells), 6)
        esd = next(s for s in svgs if "Eigenvalue spectrum (ESD) of fc1" in s)
        self.assertIsNotNone(ET.fromstring(esd).find(f".//{SVG_NS}line[@class='fit']"))

        # the heatmap rendered: each cell's centre in the colour it was given
        hpath = self.path("heat.svg")
        with open(hpath, "w", encoding="utf-8") as f:
            f.write(heat)
        _, _, px = render(hpath, self.path("heat.png"))
        for c in cells:
            x = float(c.get("x")) + float(c.get("width")) / 2
            y = float(c.get("y")) + float(c.get("height")) / 2
            fill = c.get("fill")
            want = tuple(int(fill[i:i + 2], 16) for i in (1, 3, 5))
            self.assertTrue(near(px[int(y)][int(x)], want, 3), (fill, px[int(y)][int(x)]))

    def test_untrusted_values(self):
        """Numbers that are not numbers, out of range or unsorted: read as missing, no crash."""
        odd = self.path("odd.atlog")
        write_runlog(odd, [
            {"type": "layer", "run": "x", "step": "soon", "view": "w", "name": "a",
             "status": "success", "alpha": "high", "M": 1e300},
            {"type": "layer", "run": "x", "step": 1e300, "view": "w", "name": "a",
             "status": "success", "alpha": 3.0, "xmin": 1.0, "Q": -1, "M": -5},
            {"type": "spectrum", "run": "x", "step": 1e300, "view": "w", "name": "a",
             "evals": [5, "x", None, 1, 3, 2, 4, 0.5, 8, 13, 9, 1.5, 2.5]},
            {"type": "event", "kind": "stop", "run": "x", "step": -1e300, "text": None},
        ])
        r = run("report", "--html", self.path("out"), odd)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.check_page(self.path("out", "index.html"))

    def test_bad_html_directory(self):
        blocker = self.path("file")
        open(blocker, "w").close()
        r = run("report", "--html", blocker, self.log)
        self.assertEqual(r.returncode, 2)
        self.assertIn(f"alphatop report: --html {blocker}: not a directory", r.stderr)

    def test_missing_log(self):
        r = run("report", "--html", self.path("out"), self.path("nope.atlog"))
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot open", r.stderr)
        self.assertFalse(os.path.exists(self.path("out", "index.html")))


if __name__ == "__main__":
    unittest.main()
