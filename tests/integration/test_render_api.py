"""The local renderer through the API: every resolution and aspect ratio,
fps and audio, text-to-video titles, image-to-video from every accepted
kind of image, and the odd and broken ones."""
import base64
import unittest

from catalog import CONFIG
from media import (edge_energy, grey_frame, make_image, mean_abs_diff,
                   with_exif_orientation)
from vg import SIZES, ServerTest, check_video, multipart, request_body


def data_url(kind, data):
    return "data:image/%s;base64,%s" % (kind, base64.b64encode(data).decode())


class Matrix(ServerTest):
    config = CONFIG

    def test_every_resolution_and_aspect_ratio(self):
        # Each resolution meets every aspect ratio; fps and audio rotate
        # so that each resolution also meets every fps/audio pair.
        combos = [(24, False), (30, True), (24, True), (30, False)]
        i = 0
        for res in ("480P", "720P", "1080P"):
            for ar in ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9"):
                fps, audio = combos[i % len(combos)]
                i += 1
                with self.subTest(res=res, ar=ar, fps=fps, audio=audio):
                    body = request_body(resolution=res, aspect_ratio=ar,
                                        fps=fps, generate_audio=audio,
                                        seed=i)
                    check_video(self, self.server,
                                self.server.generate(body), body)

    def test_longest_clip_has_exact_frames_and_audio(self):
        body = request_body(duration=12, fps=30, generate_audio=True)
        check_video(self, self.server, self.server.generate(body), body)


class TextToVideo(ServerTest):
    config = CONFIG

    def frame(self, body, seconds):
        info = check_video(self, self.server, self.server.generate(body),
                           body)
        w, h = SIZES[body["resolution"]][body["aspect_ratio"]]
        return grey_frame(info["bytes"], seconds, w, h), w, h

    def test_title_region_is_not_blank(self):
        for ar in ("16:9", "9:16"):
            with self.subTest(ar=ar):
                rows, w, h = self.frame(request_body(
                    aspect_ratio=ar, prompt="A LIGHTHOUSE AT DUSK",
                    camera_fixed=True), 3)
                centre = edge_energy(rows, w // 10, h // 3, w - w // 10,
                                     2 * h // 3)
                self.assertGreater(centre, 4.0, "no text in the middle")

    def test_scripts_and_long_prompts_render(self):
        prompts = ["一只猫在舒适的厨房里喝牛奶", "قطة تشرب الحليب في مطبخ دافئ",
                   "🐱🥛 a cat and its milk", "long " * 400]
        for prompt in prompts:
            with self.subTest(prompt=prompt[:20]):
                body = request_body(prompt=prompt, generate_audio=True)
                check_video(self, self.server, self.server.generate(body),
                            body)

    def test_camera_fixed_decides_whether_the_camera_moves(self):
        still_a, w, h = self.frame(request_body(camera_fixed=True, seed=5),
                                   1)
        still_b, _, _ = self.frame(request_body(camera_fixed=True, seed=5),
                                   3)
        moving_a, _, _ = self.frame(request_body(camera_fixed=False,
                                                 seed=5), 1)
        moving_b, _, _ = self.frame(request_body(camera_fixed=False,
                                                 seed=5), 3)
        self.assertLess(mean_abs_diff(still_a, still_b),
                        mean_abs_diff(moving_a, moving_b))


class ImageToVideo(ServerTest):
    config = CONFIG

    def render(self, images, **overrides):
        body = request_body(files=images, **overrides)
        r = self.server.generate(body)
        return r, body

    def test_png_jpeg_and_webp_images(self):
        for kind, ext in (("png", "png"), ("jpeg", "jpg"), ("webp", "webp")):
            with self.subTest(kind=kind):
                r, body = self.render([data_url(kind, make_image(ext))])
                check_video(self, self.server, r, body)

    def test_alpha_grayscale_and_odd_sizes(self):
        cases = {
            "alpha": make_image("png", pix_fmt="rgba",
                                vf="format=rgba,geq=r='r(X,Y)':g='g(X,Y)'"
                                   ":b='b(X,Y)':a='if(gt(X,32),255,0)'"),
            "grey": make_image("png", pix_fmt="gray"),
            "1x1": make_image("png", size="8x8", vf="scale=1:1"),
            "10000x200": make_image("png", size="10000x200"),
        }
        for name, data in cases.items():
            with self.subTest(image=name):
                r, body = self.render([data_url("png", data)])
                check_video(self, self.server, r, body)

    def test_exif_orientation_is_applied(self):
        jpeg = make_image("jpg", size="96x48")
        rotated = with_exif_orientation(jpeg, 6)
        upright = make_image("jpg", size="96x48", vf="transpose=1")
        frames = []
        for data in (rotated, upright, jpeg):
            r, body = self.render([data_url("jpeg", data)],
                                  aspect_ratio="9:16", camera_fixed=True,
                                  seed=3)
            info = check_video(self, self.server, r, body)
            frames.append(grey_frame(info["bytes"], 2, 480, 854))
        self.assertLess(mean_abs_diff(frames[0], frames[1]),
                        mean_abs_diff(frames[0], frames[2]) / 2)

    def test_several_images_make_a_sequence(self):
        red = make_image("png", source="color=c=red")
        blue = make_image("png", source="color=c=blue")
        r, body = self.render([data_url("png", red), data_url("png", blue)],
                              camera_fixed=True)
        info = check_video(self, self.server, r, body)
        first = grey_frame(info["bytes"], 0.2, 480, 480)
        last = grey_frame(info["bytes"], 3.8, 480, 480)
        self.assertGreater(mean_abs_diff(first, last), 20)

    def test_multipart_images_in_order(self):
        fields = {k: (str(v).lower() if isinstance(v, bool) else str(v))
                  for k, v in request_body().items()}
        body, ctype = multipart(fields, [
            ("files", "a.png", make_image("png"), "image/png"),
            ("files", "b.webp", make_image("webp"), "image/webp")])
        h = self.server.auth()
        h["Content-Type"] = ctype
        r = self.server.request("POST", "/v1/ula/generate-video", body, h)
        check_video(self, self.server, r, fields)

    def test_broken_image_is_422_and_refunded(self):
        before = self.server.credits()
        broken = b"\xff\xd8\xff\xe0" + b"\x00not really a jpeg" * 10
        r, _ = self.render([data_url("jpeg", broken)])
        self.assertEqual(r.status, 422, r)
        self.assertEqual(r.json["error"]["code"], "invalid_image")
        self.assertEqual(self.server.credits(), before)


if __name__ == "__main__":
    unittest.main()
