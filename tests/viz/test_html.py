"""report.md -> report.html: one page, every PNG inside it, the tables as tables, no link leaving the folder."""

import base64

import numpy as np

from sportpose.viz import draw
from sportpose.viz.html import JPEG_ABOVE, write_markdown_page


def test_markdown_report_becomes_a_self_contained_page(tmp_path):
    draw.write_png(tmp_path / "per_joint.png", np.full((8, 12, 3), 200, np.uint8))
    (tmp_path.parent / "outside.png").write_bytes((tmp_path / "per_joint.png").read_bytes())
    (tmp_path / "report.md").write_text(
        "# Evaluation: m v1\n\n- protocol: split `test` · seed 0\n\n## AP\n\n| model | Total |\n|---|---|\n"
        "| m v1 | 36.1 |\n\n![AP per joint](per_joint.png)\n\n**camera view**\n\nA paragraph\nover two lines.\n\n"
        "![gone](missing.png)\n![outside](../outside.png)\n")
    page = write_markdown_page(tmp_path / "report.md").read_text()
    assert (tmp_path / "report.html").is_file()
    png = base64.b64encode((tmp_path / "per_joint.png").read_bytes()).decode()
    assert page.count("data:image/png;base64,") == 1 and png in page
    assert "<h1>Evaluation: m v1</h1>" in page and "<code>test</code>" in page
    assert "<th>Total</th>" in page and "<td>36.1</td>" in page and "|---|" not in page
    assert "<strong>camera view</strong>" in page and "<p>A paragraph over two lines.</p>" in page
    assert "[missing image missing.png]" in page and "[missing image ../outside.png]" in page


def test_a_large_picture_is_embedded_as_jpeg(tmp_path):
    """MLflow's viewer shows no HTML artifact of about 1 MB: big frame sheets go in as JPEG."""
    rng = np.random.default_rng(0)
    draw.write_png(tmp_path / "frames.png", rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))  # ~360 KB
    assert (tmp_path / "frames.png").stat().st_size > JPEG_ABOVE
    (tmp_path / "report.md").write_text("# r\n\n![frames](frames.png)\n")
    page = write_markdown_page(tmp_path / "report.md").read_text()
    assert "data:image/jpeg;base64," in page and "data:image/png" not in page
    assert len(page) < (tmp_path / "frames.png").stat().st_size
