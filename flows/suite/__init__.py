"""Suite authoring (`wap suite ...`): list, show, check, init and diff the expectation suites in ``gx/``.

People who edit suites edit JSON, so everything here except ``init`` works on GX's JSON files directly:
GX's own loader stops at the first problem (or, for an unknown expectation type, silently drops the
expectation and audits with the rest), while ``check_suites`` reports every problem with its file and
expectation.

One module per verb, over the project model:
    project.py   the GX project on disk (gx/ and gx/datasets.yml) read as plain JSON
    listing.py   list and show
    check.py     check
    profile.py   profiling a source (for init)
    starter.py   the starter suite built from a profile
    init.py      init: staged, then installed all or nothing
    diff.py      diff against the last git commit

GX, pyarrow and the lakehouse are imported inside the functions that need them: importing GX costs
seconds, and ``wap suite list/show/diff`` never need it.
"""

from .check import CheckReport, Problem, TableSchema, check_suite_file, check_suites, lakehouse_schema, source_schema
from .diff import ExpectationChange, SuiteDiff, committed_text, diff_expectations, diff_suite, diff_suites
from .init import InitResult, init_suite, recover_init
from .listing import (
    ExpectationView,
    SuiteSummary,
    SuiteView,
    column_of,
    list_suites,
    notes_text,
    show_suite,
    show_suites,
)
from .profile import ColumnProfile, Profile, gate_dtypes, numeric_bounds, profile_source
from .project import GxFile, GxProject, SuiteError, display_path, load_project, resolve_suite, resolve_suites
from .starter import build_suite, build_table_suite

__all__ = [
    "CheckReport",
    "ColumnProfile",
    "ExpectationChange",
    "ExpectationView",
    "GxFile",
    "GxProject",
    "InitResult",
    "Problem",
    "Profile",
    "SuiteDiff",
    "SuiteError",
    "SuiteSummary",
    "SuiteView",
    "TableSchema",
    "build_suite",
    "build_table_suite",
    "check_suite_file",
    "check_suites",
    "column_of",
    "committed_text",
    "diff_expectations",
    "diff_suite",
    "diff_suites",
    "display_path",
    "gate_dtypes",
    "init_suite",
    "lakehouse_schema",
    "list_suites",
    "load_project",
    "notes_text",
    "numeric_bounds",
    "profile_source",
    "recover_init",
    "resolve_suite",
    "resolve_suites",
    "show_suite",
    "show_suites",
    "source_schema",
]
