"""Test media: reference images made with the ffmpeg CLI, EXIF tags put in
by hand, and frames pulled out of produced videos as grey pixels."""
import os
import struct
import subprocess
import tempfile


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y"] + list(args),
                   check=True, timeout=120)


def make_image(ext, size="64x48", source="testsrc", pix_fmt=None,
               vf=None):
    """An image of the given size and format; returns its bytes."""
    fd, path = tempfile.mkstemp(suffix="." + ext)
    os.close(fd)
    sep = ":" if "=" in source else "="
    args = ["-f", "lavfi", "-i", "%s%ssize=%s" % (source, sep, size)]
    if vf:
        args += ["-vf", vf]
    if pix_fmt:
        args += ["-pix_fmt", pix_fmt]
    try:
        ffmpeg(*(args + ["-frames:v", "1", path]))
        with open(path, "rb") as f:
            return f.read()
    finally:
        os.unlink(path)


def make_mp4(seconds=1, size="320x240"):
    """A small H.264/AAC MP4 (video and a sine tone) as an upstream
    provider would return it; returns its path (the caller deletes it)."""
    fd, path = tempfile.mkstemp(suffix=".mp4")
    os.close(fd)
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=%s:rate=24" % size,
           "-f", "lavfi", "-i", "sine=f=440", "-t", str(seconds),
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-shortest", path)
    return path


def with_exif_orientation(jpeg, orientation):
    """The JPEG with an APP1 Exif segment holding just Orientation."""
    assert jpeg[:2] == b"\xff\xd8"
    tiff = (b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01"
            + b"\x01\x12\x00\x03\x00\x00\x00\x01"
            + struct.pack(">H", orientation) + b"\x00\x00"
            + b"\x00\x00\x00\x00")
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def grey_frame(mp4_bytes, seconds, width, height):
    """Frame at `seconds` as a list of rows of 0..255 luma values."""
    fd, path = tempfile.mkstemp(suffix=".mp4")
    with os.fdopen(fd, "wb") as f:
        f.write(mp4_bytes)
    try:
        raw = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-ss", str(seconds), "-i",
             path, "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "gray",
             "-"], check=True, capture_output=True, timeout=120).stdout
    finally:
        os.unlink(path)
    assert len(raw) == width * height, (len(raw), width, height)
    return [raw[y * width:(y + 1) * width] for y in range(height)]


def mean_abs_diff(a, b):
    total = count = 0
    for ra, rb in zip(a, b):
        for x in range(0, len(ra), 2):
            total += abs(ra[x] - rb[x])
            count += 1
    return total / count


def edge_energy(rows, x0, y0, x1, y1):
    """Mean absolute horizontal luma step inside a box: text has sharp
    edges, a gradient background has almost none."""
    total = count = 0
    for y in range(y0, y1):
        row = rows[y]
        for x in range(x0, x1 - 1):
            total += abs(row[x + 1] - row[x])
            count += 1
    return total / max(count, 1)


def top_level_boxes(mp4_bytes):
    """The MP4's top-level box types in file order."""
    boxes, at = [], 0
    while at + 8 <= len(mp4_bytes):
        size, kind = struct.unpack(">I4s", mp4_bytes[at:at + 8])
        if size == 1:
            size = struct.unpack(">Q", mp4_bytes[at + 8:at + 16])[0]
        boxes.append(kind.decode("latin-1"))
        if size < 8:
            break
        at += size
    return boxes
