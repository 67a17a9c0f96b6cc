"""Task framework: CASA task XML → validated, logged Python callables and a CLI."""
from .params import TaskParameterError, resolve_arguments
from .registry import build_all, build_task, task_names, task_specs, xml_dir
from .wrapper import CallContext, XMLTask, current_call
from .xmlspec import ParamSpec, TaskSpec, TaskXMLError, read_task_xml

__all__ = ["CallContext", "ParamSpec", "TaskParameterError", "TaskSpec", "TaskXMLError",
           "XMLTask", "build_all", "build_task", "current_call", "read_task_xml",
           "resolve_arguments", "task_names", "task_specs", "xml_dir"]
