"""Every failure a user can meet, as one tree. The CLI prints any of them as one line (secrets redacted).

::

    ElexonError
     ├── ConfigError ............... settings or a layout that cannot work (file, section, key)
     │    ├── SettingsError          settings.toml / environment
     │    ├── IrisConfigError        IRIS credentials and queue
     │    ├── TemplateError          a dashboard layout in sheets_templates/
     │    └── WarehouseNotFound      a read-only command pointed at a DuckDB file that does not exist
     ├── SourceError ............... an input could not be fetched or read
     │    ├── PortalError            the Elexon Portal (HTTP, key, "Scripting Error")
     │    ├── InsightsError          the BMRS Insights API
     │    ├── ServiceBusError        Azure Service Bus (IRIS)
     │    ├── S0142Error             an S0142 file: names the file, line and field
     │    │    └── FileNameError     a name that is not S0142_<date>_<run>_<stamp>[.gz]
     │    ├── DecodeError            an IRIS body that is not a JSON array of records
     │    ├── InputFileError         a file or folder given on the command line that is not there
     │    └── AssetFileError         an asset list (CSV) with bad rows: file, line, column
     ├── WarehouseError ............ the warehouse (DuckDB file or BigQuery dataset)
     │    ├── WarehouseUnavailable   OUR side: I/O, disk full, lock, network, credentials, commit
     │    │                          failure. Retry later; never blame the data (nothing is
     │    │                          quarantined or dead-lettered for it)
     │    ├── DataRejected           the warehouse refused THIS data (binder, catalog, conversion,
     │    │                          constraint): isolate the message or record that caused it
     │    └── NotOurTable            a table or view the project needs exists but was not created by it
     ├── ArgumentError ............. an argument that cannot work (END before START, a bad time)
     ├── ReportError ............... a report that cannot run as asked (name, window, section)
     ├── TargetError ............... a dashboard could not be written
     │    └── SheetsError            Google Sheets (auth, API, spreadsheet id)
     └── AlertError ................ an alert rule or target that cannot work

A bare :class:`WarehouseError` is a statement the warehouse refused that is neither (a query's
syntax, for instance). Backends translate their own exceptions into this tree (DuckDB's
``BinderException`` → :class:`DataRejected`, ``IOException`` → :class:`WarehouseUnavailable`, …) so
the rest of the code reasons about kinds, never about engine classes.
"""

from __future__ import annotations


class ElexonError(Exception):
    """Base of every error this project raises on purpose."""


# ---------------------------------------------------------------------------------------- configuration
class ConfigError(ElexonError):
    """Settings that cannot work; the message names the file, section and key."""


class SettingsError(ConfigError):
    """settings.toml or an environment variable with a wrong value."""


class IrisConfigError(ConfigError):
    """IRIS settings that cannot work; says which setting and what is wrong."""


class WarehouseNotFound(ConfigError):
    """A command that only reads was pointed at a DuckDB file that does not exist (a typo, or the
    wrong warehouse); only loading commands create one."""


class TemplateError(ConfigError):
    """A dashboard layout that cannot be used; names the file, tab and key."""


# ---------------------------------------------------------------------------------------- sources
class SourceError(ElexonError):
    """An input could not be fetched or read."""


class PortalError(SourceError):
    """The Elexon Portal could not be used; the message never contains the key."""

    def __init__(self, message: str):
        from core.logs import redact

        super().__init__(redact(message))


class InsightsError(SourceError):
    """The Insights API could not give us the data."""


class ServiceBusError(SourceError):
    """Azure Service Bus (IRIS) could not be reached or refused us."""


class S0142Error(SourceError):
    """An S0142 file that cannot be loaded; says which file, line (1-based) and field."""

    def __init__(self, file: str, message: str, line: int | None = None, field: str | None = None):
        self.file, self.line, self.field, self.reason = file, line, field, message
        where = file + (f" line {line}" if line is not None else "") + (f" field {field}" if field else "")
        super().__init__(f"{where}: {message}")


class FileNameError(S0142Error):
    """A file name that does not follow ``S0142_<YYYYMMDD>_<RUN>_<YYYYMMDDHHMMSS>[.gz]``."""

    def __init__(self, name: str, message: str):
        super().__init__(name, message)


class DecodeError(SourceError):
    """A body that is not a JSON array (or object) of records."""


class InputFileError(SourceError):
    """A file or folder named on the command line that does not exist or cannot be read."""


class AssetFileError(SourceError):
    """A list of assets (CSV) with a bad row: names the file, every bad line and the column."""


# ---------------------------------------------------------------------------------------- warehouse
class WarehouseError(ElexonError):
    """The warehouse refused a statement (neither unavailable nor a data problem: e.g. SQL syntax)."""


class WarehouseUnavailable(WarehouseError):
    """The warehouse cannot be used right now: I/O, disk full, lock, network, credentials, commit.

    Our fault, not the data's: retry later; nothing is quarantined or dead-lettered for it.
    """


class DataRejected(WarehouseError):
    """The warehouse rejected this data (binder, catalog, conversion, constraint): isolate it."""


class NotOurTable(WarehouseError):
    """A table or view the project needs exists, but the project did not create it."""


# ---------------------------------------------------------------------------------------- outputs
class ArgumentError(ElexonError):
    """An argument that cannot work: END before START, a time that does not parse."""


class ReportError(ElexonError):
    """A report that cannot run as asked (unknown name, bad window, unknown section)."""


class TargetError(ElexonError):
    """A dashboard target (Google Sheets, the workbook, the HTML page) could not be written."""


class SheetsError(TargetError):
    """Google Sheets could not be written (credentials, spreadsheet, API)."""


class AlertError(ElexonError):
    """An alert rule or delivery target that cannot work."""
