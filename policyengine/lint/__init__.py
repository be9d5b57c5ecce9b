"""`policyengine lint`: rules that catch the policy mistakes that cause over-blocking, before deploy.

    from policyengine.lint import lint_paths
    report = lint_paths(["policies/"])
    for f in report.findings: print(f.render())
"""

from .config import ConfigError, LintConfig, LintConfigError, load_config
from .rule import Finding, RuleInfo
from .runner import LintReport, lint_paths

__all__ = ["ConfigError", "Finding", "LintConfig", "LintConfigError",
           "LintReport", "RuleInfo", "lint_paths", "load_config"]
