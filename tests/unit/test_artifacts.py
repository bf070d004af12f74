"""The artifact tree, sizes and preview decisions: pure logic, no server."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from services.core.records import ArtifactEntry
from services.experiments.artifacts import (
    DOWNLOAD_MAX_BYTES,
    PREVIEW_MAX_BYTES,
    TABLE_PREVIEW_ROWS,
    ArtifactNode,
    PreviewKind,
    artifact_table,
    build_artifact_tree,
    build_preview,
    human_size,
    mlflow_artifact_url,
    plan_preview,
    preview_kind,
)


def folder(path: str) -> ArtifactEntry:
    return ArtifactEntry(path, True, None)


def file(path: str, size: int) -> ArtifactEntry:
    return ArtifactEntry(path, False, size)


def lister(listing: dict[str | None, list[ArtifactEntry]]):  # type: ignore[no-untyped-def]
    calls: list[str | None] = []

    def list_folder(path: str | None) -> list[ArtifactEntry]:
        calls.append(path)
        return listing.get(path, [])

    return list_folder, calls


def test_tree_puts_each_folder_before_its_contents_and_sums_folder_sizes() -> None:
    list_folder, _ = lister(
        {
            None: [file("b.txt", 5), folder("a"), file("a.txt", 1)],
            "a": [file("a/x.json", 10), folder("a/deep")],
            "a/deep": [file("a/deep/y.csv", 100)],
        }
    )
    tree = build_artifact_tree(list_folder)
    assert [n.path for n in tree.nodes] == [
        "a",
        "a/deep",
        "a/deep/y.csv",
        "a/x.json",
        "a.txt",
        "b.txt",
    ]
    assert tree.find("a") == ArtifactNode("a", True, 110, True)
    assert tree.find("a/deep").size_bytes == 100  # type: ignore[union-attr]
    assert tree.total_bytes == 116
    assert not tree.truncated
    assert [n.path for n in tree.files] == ["a/deep/y.csv", "a/x.json", "a.txt", "b.txt"]


def test_tree_stops_at_the_entry_limit_and_marks_unfinished_folders() -> None:
    list_folder, _ = lister(
        {None: [folder("logs")], "logs": [file(f"logs/{i:03}.log", 1) for i in range(50)]}
    )
    tree = build_artifact_tree(list_folder, max_entries=10)
    assert len(tree.nodes) == 10
    assert tree.truncated
    logs = tree.find("logs")
    assert logs is not None and not logs.complete and logs.size_bytes == 9
    assert artifact_table(tree)["Size"].iloc[0] == "≥ 9 B"


def test_tree_does_not_open_folders_below_the_depth_limit() -> None:
    list_folder, calls = lister(
        {None: [folder("a")], "a": [folder("a/b")], "a/b": [file("a/b/c", 1)]}
    )
    tree = build_artifact_tree(list_folder, max_depth=1)
    assert calls == [None, "a"]
    assert tree.truncated
    assert [n.path for n in tree.nodes] == ["a", "a/b"]


def test_tree_stops_after_the_listing_limit() -> None:
    listing: dict[str | None, list[ArtifactEntry]] = {None: [folder(f"d{i}") for i in range(5)]}
    list_folder, calls = lister(listing)
    tree = build_artifact_tree(list_folder, max_listings=3)
    assert len(calls) == 3
    assert tree.truncated
    assert not tree.find("d4").complete  # type: ignore[union-attr]


def test_empty_artifacts_give_an_empty_tree() -> None:
    list_folder, _ = lister({})
    tree = build_artifact_tree(list_folder)
    assert tree.nodes == () and tree.total_bytes == 0 and not tree.truncated


def test_table_indents_names_by_depth() -> None:
    list_folder, _ = lister({None: [folder("a")], "a": [file("a/f.txt", 2048)]})
    table = artifact_table(build_artifact_tree(list_folder))
    assert table["Name"].tolist() == ["a/", "    f.txt"]
    assert table["Size"].tolist() == ["2.0 KB", "2.0 KB"]
    assert table["Type"].tolist() == ["folder", "text"]


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, ""),
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KB"),
        (15634, "15.3 KB"),
        (6 * 1024 * 1024, "6.0 MB"),
        (3 * 1024**4, "3.0 TB"),
    ],
)
def test_human_size_uses_powers_of_1024(size: int | None, text: str) -> None:
    assert human_size(size) == text


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("notes.TXT", PreviewKind.TEXT),
        ("report.html", PreviewKind.TEXT),
        ("logo.svg", PreviewKind.TEXT),
        ("model/MLmodel", PreviewKind.TEXT),
        ("conda.yaml", PreviewKind.TEXT),
        ("metrics.json", PreviewKind.JSON),
        ("data.csv", PreviewKind.CSV),
        ("data.tsv", PreviewKind.TSV),
        ("reference/reference.parquet", PreviewKind.PARQUET),
        ("plot.PNG", PreviewKind.IMAGE),
        ("model.pkl", PreviewKind.NONE),
        ("weights", PreviewKind.NONE),
    ],
)
def test_preview_kind_comes_from_the_extension_or_known_names(path: str, kind: PreviewKind) -> None:
    assert preview_kind(path) is kind


def test_files_up_to_the_preview_cap_are_previewed_and_downloadable() -> None:
    plan = plan_preview(ArtifactNode("a.txt", False, PREVIEW_MAX_BYTES))
    assert plan.preview and plan.download and plan.reason == ""


def test_files_over_the_preview_cap_get_only_a_download() -> None:
    plan = plan_preview(ArtifactNode("big.bin", False, PREVIEW_MAX_BYTES + 1))
    assert not plan.preview and plan.download
    assert "over the 5.0 MB preview limit" in plan.reason


def test_files_over_the_download_cap_get_neither() -> None:
    plan = plan_preview(ArtifactNode("huge.csv", False, DOWNLOAD_MAX_BYTES + 1))
    assert not plan.preview and not plan.download


def test_unknown_types_and_unknown_sizes_are_not_read() -> None:
    unknown_type = plan_preview(ArtifactNode("model.pkl", False, 10))
    assert not unknown_type.preview and unknown_type.download
    unknown_size = plan_preview(ArtifactNode("a.txt", False, None))
    assert not unknown_size.preview and not unknown_size.download


def preview(path: str, content: bytes):  # type: ignore[no-untyped-def]
    return build_preview(plan_preview(ArtifactNode(path, False, len(content))), content)


def test_html_and_svg_are_shown_as_source_text() -> None:
    html = b"<script>alert(1)</script>"
    shown = preview("report.html", html)
    assert shown.kind is PreviewKind.TEXT and shown.text == html.decode()
    assert preview("logo.svg", b"<svg onload='x()'/>").kind is PreviewKind.TEXT


def test_json_documents_are_parsed_and_scalars_or_broken_json_fall_back_to_text() -> None:
    assert preview("m.json", json.dumps({"a": [1, 2]}).encode()).value == {"a": [1, 2]}
    assert preview("s.json", b'"<b>x</b>"').kind is PreviewKind.TEXT
    broken = preview("b.json", b"{not json")
    assert broken.kind is PreviewKind.TEXT and broken.text == "{not json"
    assert "Could not read it as JSON" in broken.note


def test_csv_and_tsv_show_at_most_the_preview_rows() -> None:
    rows = "\n".join(f'{i},=HYPERLINK("x")' for i in range(TABLE_PREVIEW_ROWS + 5))
    shown = preview("t.csv", f"n,formula\n{rows}\n".encode())
    assert shown.table is not None and len(shown.table) == TABLE_PREVIEW_ROWS
    assert shown.table["formula"].iloc[0] == '=HYPERLINK("x")'
    assert shown.note == f"First {TABLE_PREVIEW_ROWS:,} rows"
    tsv = preview("t.tsv", b"a\tb\n1\t2\n")
    assert tsv.table is not None and tsv.table.columns.tolist() == ["a", "b"]
    assert tsv.note == "1 row × 2 columns"


def test_parquet_is_shown_as_a_table_head() -> None:
    buffer = io.BytesIO()
    pd.DataFrame({"x": range(TABLE_PREVIEW_ROWS + 1)}).to_parquet(buffer)
    shown = preview("r.parquet", buffer.getvalue())
    assert shown.kind is PreviewKind.PARQUET
    assert shown.table is not None and len(shown.table) == TABLE_PREVIEW_ROWS
    assert shown.note == f"First {TABLE_PREVIEW_ROWS:,} of {TABLE_PREVIEW_ROWS + 1:,} rows"


def test_a_corrupt_parquet_file_gets_a_note_not_an_exception() -> None:
    shown = preview("r.parquet", b"PAR1 not really")
    assert shown.kind is PreviewKind.NONE and "Could not read this file as Parquet" in shown.note


def test_images_are_previewed_only_when_their_bytes_match_the_extension() -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"rest"
    assert preview("plot.png", png).image == png
    assert preview("plot.png", b"<svg/>").kind is PreviewKind.NONE


def test_binary_content_in_a_text_file_gets_no_preview() -> None:
    assert preview("weird.txt", b"abc\x00def").kind is PreviewKind.NONE


def test_long_text_is_cut_with_a_note() -> None:
    shown = preview("big.log", b"x" * 300_000)
    assert len(shown.text) == 200_000 and "first 200,000 characters" in shown.note


def test_mlmodel_is_highlighted_as_yaml() -> None:
    assert preview("model/MLmodel", b"flavors: {}").language == "yaml"


def test_mlflow_artifact_url_quotes_the_path() -> None:
    url = mlflow_artifact_url("http://h:5", "1", "r" * 32, "a b/c.txt")
    assert url == f"http://h:5/#/experiments/1/runs/{'r' * 32}/artifactPath/a%20b/c.txt"
