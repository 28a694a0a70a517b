#!/usr/bin/env python3
"""Draws nuget/icon.png (128x128 RGBA): a ring of eight contributor nodes joined to one centre node.
Pure standard library (zlib + struct) so it runs anywhere: python3 nuget/make-icon.py"""
import math, struct, zlib, os

N = 128
px = [[(0, 0, 0, 0)] * N for _ in range(N)]

def blend(x, y, rgb, a):
    if 0 <= x < N and 0 <= y < N and a > 0:
        r, g, b, pa = px[y][x]
        na = a + pa * (1 - a)
        if na == 0:
            return
        mix = lambda c, pc: (c * a + pc * pa * (1 - a)) / na
        px[y][x] = (mix(rgb[0], r), mix(rgb[1], g), mix(rgb[2], b), na)

def disc(cx, cy, rad, rgb):
    for y in range(int(cy - rad - 2), int(cy + rad + 3)):
        for x in range(int(cx - rad - 2), int(cx + rad + 3)):
            d = math.hypot(x + 0.5 - cx, y + 0.5 - cy)
            blend(x, y, rgb, max(0.0, min(1.0, rad - d + 0.5)))

def line(x0, y0, x1, y1, w, rgb):
    steps = int(math.hypot(x1 - x0, y1 - y0) * 2) + 1
    for i in range(steps + 1):
        t = i / steps
        disc(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t, w / 2, rgb)

bg, node, hub, edge = (24, 32, 56), (80, 200, 160), (250, 250, 250), (110, 130, 170)
disc(64, 64, 62, bg)
c = 64
pts = [(c + 42 * math.cos(2 * math.pi * k / 8), c + 42 * math.sin(2 * math.pi * k / 8)) for k in range(8)]
for (x, y) in pts:
    line(c, c, x, y, 3, edge)
for k in range(8):
    x0, y0 = pts[k]; x1, y1 = pts[(k + 1) % 8]
    line(x0, y0, x1, y1, 2, edge)
for (x, y) in pts:
    disc(x, y, 8, node)
disc(c, c, 13, hub)

raw = b"".join(b"\x00" + bytes(int(round(v if i < 3 else v * 255)) for p in row for i, v in enumerate(p)) for row in px)
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", N, N, 8, 6, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "icon.png"), "wb").write(png)
