"""The plugin API and registry: spec validation, lookup, and loading real plugins from folders
and entry points (written to tmp_path by the tests), with broken plugins recorded, not raised."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path

import pytest

from studio.plugins import (
    ENTRY_POINT_GROUP,
    ExporterSpec,
    GeneratorSpec,
    ImporterSpec,
    PluginLoadError,
    Registry,
    default_registry,
    plugin_folders,
    reset_default_registry,
)


def write_nothing(*args, **options):
    return None


def read_nothing(path, **options):
    return None


def motion_exporter(name="motion_json", extensions=(".json",), kind="motion"):
    return ExporterSpec(name, "Motion (JSON)", kind, extensions, write_nothing)


def motion_importer(name="motion_json", extensions=(".json",), kind="motion"):
    return ImporterSpec(name, "Motion (JSON)", kind, extensions, read_nothing)


# --- spec validation -----------------------------------------------------------------------


def test_valid_specs_keep_their_fields_and_are_frozen():
    spec = ExporterSpec("mesh_obj", "Mesh sequence (OBJ)", "mesh", [".obj"], write_nothing, "one OBJ per frame")
    assert spec.extensions == (".obj",)  # lists are normalized to tuples
    assert spec.description == "one OBJ per frame"
    with pytest.raises(AttributeError):
        spec.name = "other"  # type: ignore[misc]
    generator = GeneratorSpec("rig", "Phoneme rig", create=lambda **options: object())
    assert generator.description == ""


@pytest.mark.parametrize("bad_name", ["", "Motion", "motion-json", "motion json", "é", None, 3])
def test_spec_name_must_be_lowercase_identifier(bad_name):
    with pytest.raises(ValueError, match=r"\[a-z0-9_\]\+"):
        ExporterSpec(bad_name, "Label", "motion", (".json",), write_nothing)


def test_unknown_kinds_are_rejected_with_the_known_ones_listed():
    with pytest.raises(ValueError, match="kind must be one of motion, video, image_sequence, mesh, curves"):
        ExporterSpec("x", "X", "audio", (".wav",), write_nothing)
    with pytest.raises(ValueError, match="kind must be one of motion, portrait, mesh, audio, transcript"):
        ImporterSpec("x", "X", "video", (".mp4",), read_nothing)


@pytest.mark.parametrize("bad_extensions", [(".JSON",), ("json",), (".",), (), ".json", (".j son",), (3,)])
def test_extensions_must_be_lowercase_and_start_with_a_dot(bad_extensions):
    with pytest.raises(ValueError, match="exten"):
        ImporterSpec("x", "X", "motion", bad_extensions, read_nothing)


def test_multi_dot_extensions_are_valid():
    assert ImporterSpec("archive", "Archive", "mesh", (".tar.gz",), read_nothing).extensions == (".tar.gz",)


def test_callables_and_labels_are_checked():
    with pytest.raises(ValueError, match="export must be callable"):
        ExporterSpec("x", "X", "motion", (".json",), "not a function")
    with pytest.raises(ValueError, match="load must be callable"):
        ImporterSpec("x", "X", "motion", (".json",), None)
    with pytest.raises(ValueError, match="create must be callable"):
        GeneratorSpec("x", "X", 42)
    with pytest.raises(ValueError, match="label must be a non-empty string"):
        GeneratorSpec("x", "  ", lambda: None)


# --- registering and lookup ----------------------------------------------------------------


def test_add_rejects_duplicates_unless_replace():
    registry = Registry()
    first = registry.add(motion_exporter())
    with pytest.raises(ValueError, match="exporter 'motion_json' is already registered"):
        registry.add(motion_exporter())
    assert registry.exporter("motion_json") is first

    second = motion_exporter(extensions=(".json", ".motion.json"))
    registry.add(second, replace=True)
    assert registry.exporter("motion_json") is second
    assert registry.exporters() == [second]


def test_the_same_name_may_exist_in_different_categories():
    registry = Registry()
    registry.add(motion_exporter())
    registry.add(motion_importer())
    registry.add(GeneratorSpec("motion_json", "Odd but allowed", lambda **options: None))
    assert registry.counts() == {"exporters": 1, "importers": 1, "generators": 1}


def test_add_rejects_things_that_are_not_specs():
    with pytest.raises(TypeError, match="ExporterSpec, ImporterSpec or GeneratorSpec"):
        Registry().add({"name": "x"})  # type: ignore[arg-type]


def test_listing_filters_by_kind_in_registration_order():
    registry = Registry()
    mp4 = registry.add(ExporterSpec("mp4", "Video (MP4)", "video", (".mp4",), write_nothing))
    json_motion = registry.add(motion_exporter())
    npz_motion = registry.add(motion_exporter("motion_npz", (".npz",)))
    assert registry.exporters() == [mp4, json_motion, npz_motion]
    assert registry.exporters("motion") == [json_motion, npz_motion]
    assert registry.exporters("curves") == []
    assert registry.importers() == [] and registry.generators() == []


def test_lookup_by_unknown_name_lists_the_known_names():
    registry = Registry()
    registry.add(motion_exporter())
    registry.add(motion_exporter("motion_npz", (".npz",)))
    with pytest.raises(KeyError, match="no exporter named 'fbx'; known exporters: motion_json, motion_npz"):
        registry.exporter("fbx")
    with pytest.raises(KeyError, match="known importers: none"):
        registry.importer("anything")
    with pytest.raises(KeyError, match="no generator named 'neural'"):
        registry.generator("neural")


def test_lookup_by_extension_is_case_insensitive_and_prefers_the_longest_match():
    registry = Registry()
    gz = registry.add(ImporterSpec("gzip_mesh", "Gzip", "mesh", (".gz",), read_nothing))
    tarball = registry.add(ImporterSpec("flame_tarball", "FLAME tarball", "mesh", (".tar.gz",), read_nothing))
    json_motion = registry.add(motion_importer())
    assert registry.importer_for("/data/Head.TAR.GZ") is tarball
    assert registry.importer_for(Path("scan.gz")) is gz
    assert registry.importer_for("Take_01.JSON") is json_motion
    assert registry.importer_for("take.json", kind="motion") is json_motion


def test_lookup_by_extension_respects_kind():
    registry = Registry()
    registry.add(motion_exporter())
    curves = registry.add(ExporterSpec("arkit_json", "ARKit curves", "curves", (".json",), write_nothing))
    assert registry.exporter_for("take.json", kind="curves") is curves
    assert registry.exporter_for("take.json", kind="motion").name == "motion_json"


def test_lookup_by_missing_extension_names_the_file_and_the_supported_extensions():
    registry = Registry()
    registry.add(motion_exporter())
    registry.add(motion_exporter("motion_npz", (".npz",)))
    with pytest.raises(ValueError, match=r"no exporter for 'take\.fbx': supported extensions are \.json, \.npz"):
        registry.exporter_for("take.fbx")
    with pytest.raises(ValueError, match=r"no mesh exporter for 'head\.obj': no mesh exporters are registered"):
        registry.exporter_for("head.obj", kind="mesh")
    with pytest.raises(ValueError, match="no importer for 'take.json'"):
        registry.importer_for("take.json")
    with pytest.raises(ValueError, match="supported extensions are .json"):
        registry.exporter_for(".json")  # a bare extension is not a file name


# --- loading plugins from a folder ---------------------------------------------------------

GOOD_PACKAGE_INIT = '''
"""A bundled-style plugin: a package whose register() adds a motion exporter."""
from studio.plugins import ExporterSpec

from .writer import write_motion_json


def register(registry):
    registry.add(ExporterSpec(
        name="tmp_motion_json",
        label="Motion (test JSON)",
        kind="motion",
        extensions=(".tmpjson",),
        export=write_motion_json,
        description="writes fps and values as JSON",
    ))
'''

GOOD_PACKAGE_WRITER = '''
import json


def write_motion_json(motion, path, **options):
    with open(path, "w", encoding="utf-8") as file:
        json.dump({"fps": motion["fps"], "values": motion["values"], **options}, file)
'''

GOOD_SINGLE_MODULE = '''
from studio.plugins import ImporterSpec


def load_transcript(path, **options):
    with open(path, encoding="utf-8") as file:
        return file.read().strip()


def register(registry):
    registry.add(ImporterSpec("plain_text", "Transcript (text)", "transcript", (".txt",), load_transcript))
'''


def write_plugin_folder(folder: Path) -> Path:
    """A plugin folder with one good package, one good module and several broken plugins."""
    good_package = folder / "good_motion"
    good_package.mkdir(parents=True)
    (good_package / "__init__.py").write_text(textwrap.dedent(GOOD_PACKAGE_INIT))
    (good_package / "writer.py").write_text(textwrap.dedent(GOOD_PACKAGE_WRITER))
    (folder / "transcripts.py").write_text(textwrap.dedent(GOOD_SINGLE_MODULE))

    broken_on_import = folder / "broken_import"
    broken_on_import.mkdir()
    (broken_on_import / "__init__.py").write_text("raise RuntimeError('this plugin is broken')\n")
    (folder / "no_register.py").write_text("VALUE = 1\n")
    (folder / "register_raises.py").write_text(textwrap.dedent('''
        from studio.plugins import GeneratorSpec

        def register(registry):
            registry.add(GeneratorSpec("half_registered", "Half", lambda **options: None))
            raise OSError("model weights not found")
    '''))
    (folder / "syntax_error.py").write_text("def register(registry)\n")

    (folder / "README.md").write_text("not a plugin\n")
    (folder / "_private_helper.py").write_text("raise RuntimeError('must not be imported')\n")
    (folder / "data_only").mkdir()  # no __init__.py: not a plugin
    return folder


def errors_by_file_name(registry: Registry) -> dict[str, PluginLoadError]:
    return {Path(error.source).name: error for error in registry.errors}


def test_load_folder_loads_good_plugins_and_records_broken_ones(tmp_path):
    plugin_folder = write_plugin_folder(tmp_path / "plugins")
    registry = Registry()
    registry.load_folder(plugin_folder)

    errors = errors_by_file_name(registry)
    assert set(errors) == {"broken_import", "no_register.py", "register_raises.py", "syntax_error.py"}
    assert "RuntimeError: this plugin is broken" in errors["broken_import"].message
    assert errors["broken_import"].source == str(plugin_folder / "broken_import")
    assert "Traceback" in errors["broken_import"].details
    assert errors["no_register.py"].message == "has no register(registry) function"
    assert "OSError: model weights not found" in errors["register_raises.py"].message
    assert "SyntaxError" in errors["syntax_error.py"].message
    assert registry.generators() == []  # what a failing register() added is rolled back

    exporter = registry.exporter_for(tmp_path / "take.TMPJSON", kind="motion")
    assert exporter.name == "tmp_motion_json"
    assert registry.source_of(exporter) == str(plugin_folder / "good_motion")
    output = tmp_path / "take.tmpjson"
    exporter.export({"fps": 25, "values": [[0.0, 1.5]]}, output, precision=3)
    assert json.loads(output.read_text()) == {"fps": 25, "values": [[0.0, 1.5]], "precision": 3}

    transcript = tmp_path / "line.txt"
    transcript.write_text("  hello there \n")
    assert registry.importer_for(transcript, kind="transcript").load(transcript) == "hello there"


def test_plugin_modules_get_private_names_and_failed_ones_are_forgotten(tmp_path):
    plugin_folder = write_plugin_folder(tmp_path / "plugins")
    modules_before = set(sys.modules)
    registry = Registry()
    registry.load_folder(plugin_folder)
    new_plugin_modules = {name for name in set(sys.modules) - modules_before if name.startswith("_studio_plugin_")}
    assert any(name.endswith("_good_motion") for name in new_plugin_modules)
    assert any(name.endswith("_good_motion.writer") for name in new_plugin_modules)
    assert not any("broken_import" in name or "syntax_error" in name for name in new_plugin_modules)
    assert "good_motion" not in sys.modules  # never imported under its public name


def test_loading_the_same_folder_twice_records_duplicates_and_keeps_the_first(tmp_path):
    plugin_folder = write_plugin_folder(tmp_path / "plugins")
    registry = Registry()
    registry.load_folder(plugin_folder)
    first = registry.exporter("tmp_motion_json")
    registry.errors.clear()
    registry.load_folder(plugin_folder)
    assert registry.exporter("tmp_motion_json") is first
    duplicate_messages = [error.message for error in registry.errors if "already registered" in error.message]
    assert any(f"by {plugin_folder / 'good_motion'}" in message for message in duplicate_messages)


def test_load_folder_records_a_missing_folder(tmp_path):
    registry = Registry()
    registry.load_folder(tmp_path / "nowhere")
    assert registry.errors == [
        PluginLoadError(str(tmp_path / "nowhere"), "plugin folder does not exist or is not a folder")
    ]


# --- loading plugins from entry points -----------------------------------------------------

TEST_ENTRY_POINT_GROUP = "talking_head_studio_tests.plugins"


@pytest.fixture
def installed_test_distribution(tmp_path, monkeypatch):
    """A real (tiny) installed distribution on sys.path declaring entry points in a test group."""
    module_name = f"thstudio_entry_point_plugin_{os.getpid()}_{tmp_path.name}".replace("-", "_")
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{module_name}.py").write_text(textwrap.dedent('''
        from studio.plugins import ExporterSpec, GeneratorSpec


        def write_text(motion, path, **options):
            with open(path, "w", encoding="utf-8") as file:
                file.write(str(motion))


        def register(registry):
            registry.add(ExporterSpec("entry_text", "Text", "curves", (".curves.txt",), write_text))


        def register_generator(registry):
            registry.add(GeneratorSpec("entry_rig", "Entry-point rig", lambda **options: options))


        NOT_CALLABLE = 3
    '''))
    dist_info = site / "thstudio_test_plugin-1.0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: thstudio-test-plugin\nVersion: 1.0\n")
    (dist_info / "entry_points.txt").write_text(textwrap.dedent(f"""
        [{TEST_ENTRY_POINT_GROUP}]
        text_curves = {module_name}:register
        rig = {module_name}:register_generator
        missing_module = {module_name}_does_not_exist:register
        missing_function = {module_name}:no_such_function
        not_callable = {module_name}:NOT_CALLABLE
    """))
    monkeypatch.syspath_prepend(str(site))
    yield module_name
    sys.modules.pop(module_name, None)


def test_load_entry_points_registers_real_entry_points_and_records_broken_ones(installed_test_distribution, tmp_path):
    registry = Registry()
    registry.load_entry_points(TEST_ENTRY_POINT_GROUP)

    exporter = registry.exporter_for("take.CURVES.txt")
    assert exporter.name == "entry_text"
    assert "'text_curves'" in registry.source_of(exporter)
    exporter.export({"fps": 30}, tmp_path / "take.curves.txt")
    assert (tmp_path / "take.curves.txt").read_text() == "{'fps': 30}"
    assert registry.generator("entry_rig").create(seed=1) == {"seed": 1}

    messages = {error.source.split("'")[1]: error.message for error in registry.errors}
    assert set(messages) == {"missing_module", "missing_function", "not_callable"}
    assert "ModuleNotFoundError" in messages["missing_module"]
    assert "AttributeError" in messages["missing_function"]
    assert messages["not_callable"] == "register is not callable (int)"


def test_default_registry_is_cached_and_sees_the_built_in_entry_point(monkeypatch, tmp_path):
    monkeypatch.setenv("STUDIO_PLUGIN_PATH", "")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    reset_default_registry()
    try:
        registry = default_registry()
        assert default_registry() is registry
        # pyproject.toml declares `motion_files = "studio.io.motion_files:register"` in our group:
        # it either registered something or was recorded as an error — never raised.
        built_in_errors = [error for error in registry.errors if "'motion_files'" in error.source]
        registered_specs = registry.exporters() + registry.importers() + registry.generators()
        sources = [registry.source_of(spec) or "" for spec in registered_specs]
        assert built_in_errors or any("'motion_files'" in source for source in sources)
        assert all(ENTRY_POINT_GROUP in error.source for error in built_in_errors)
    finally:
        reset_default_registry()
    assert default_registry() is not registry
    reset_default_registry()


# --- plugin folders ------------------------------------------------------------------------


def test_plugin_folders_honour_studio_plugin_path_and_the_user_folder(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    user_folder = tmp_path / "xdg" / "talking-head-studio" / "plugins"
    environ = {
        "STUDIO_PLUGIN_PATH": os.pathsep.join([str(first), "", str(second), str(first)]),
        "XDG_DATA_HOME": str(tmp_path / "xdg"),
    }
    folders = plugin_folders(environ)
    assert folders[:2] == [first, second]  # in order, empty entries and duplicates dropped
    assert user_folder not in folders  # only when it exists

    user_folder.mkdir(parents=True)
    assert plugin_folders(environ)[-1] == user_folder


def test_plugin_folders_include_the_checkout_plugins_folder_and_read_the_real_environment(monkeypatch, tmp_path):
    repository_plugins = Path(__file__).resolve().parents[1] / "plugins"
    monkeypatch.setenv("STUDIO_PLUGIN_PATH", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "empty-xdg"))
    folders = plugin_folders()
    assert folders[0] == tmp_path
    if repository_plugins.is_dir():
        assert repository_plugins in folders


def test_user_folder_defaults_to_local_share(monkeypatch, tmp_path):
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    user_folder = tmp_path / ".local" / "share" / "talking-head-studio" / "plugins"
    user_folder.mkdir(parents=True)
    assert user_folder in plugin_folders({"HOME": str(tmp_path)})


# --- the documented example ----------------------------------------------------------------


def test_the_plugin_example_in_plugins_readme_works(tmp_path):
    readme = Path(__file__).resolve().parents[1] / "plugins" / "README.md"
    example_section = readme.read_text(encoding="utf-8").split("## A minimal plugin", 1)[1]
    example_code = example_section.split("```python\n", 1)[1].split("```", 1)[0]
    package = tmp_path / "plugins" / "plain_transcripts"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(example_code)

    registry = Registry()
    registry.load_folder(tmp_path / "plugins")
    assert registry.errors == []
    take = tmp_path / "take_01.txt"
    take.write_text("Hello,\n   world  \n")
    assert registry.importer_for(take, kind="transcript").load(take) == "Hello, world"
    take.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ValueError, match="take_01.txt: not UTF-8 text"):
        registry.importer_for(take).load(take)


def test_unknown_kinds_in_lookups_are_named():
    registry = Registry()
    with pytest.raises(ValueError, match="unknown exporter kind 'motoin'; known kinds: motion, video"):
        registry.exporters("motoin")
    with pytest.raises(ValueError, match="unknown importer kind 'video'"):
        registry.importer_for("take.mp4", kind="video")


def test_a_plugin_calling_default_registry_while_loading_is_recorded_not_recursing(monkeypatch, tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "impatient.py").write_text(
        "from studio.plugins import default_registry\n"
        "default_registry()\n"
        "def register(registry):\n"
        "    pass\n"
    )
    monkeypatch.setenv("STUDIO_PLUGIN_PATH", str(folder))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    reset_default_registry()
    try:
        errors = errors_by_file_name(default_registry())
        assert "default_registry() was called while plugins are loading" in errors["impatient.py"].message
    finally:
        reset_default_registry()
