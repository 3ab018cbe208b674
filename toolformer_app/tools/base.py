"""What every tool is: a name, a few-shot prompt, an A.1 heuristic, an executor and default thresholds."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ToolResult:
    """The executor's answer: an output string, or no output and the reason why."""

    output: str | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.output is not None

    @classmethod
    def failure(cls, what: str, exc: Exception) -> ToolResult:
        """No result, and the first line of the exception as the reason ("QA failed: ValueError: ...")."""
        first = (str(exc).strip().splitlines() or [""])[0]
        return cls(None, f"{what} failed: {type(exc).__name__}: {first}")


@dataclass(frozen=True)
class Thresholds:
    """Sampling and filtering defaults (paper, Appendix A), tuned for small models.

    tau_s: keep positions with p(" [") > tau_s; k: at most k positions per text;
    m: calls sampled per position; tau_f: keep a call if L- - L+ >= tau_f.
    """

    tau_s: float = 0.005
    k: int = 5
    m: int = 5
    tau_f: float = 0.3


class ToolError(RuntimeError):
    """Raised by ``Tool.__call__`` when the executor gives no result (carries the reason)."""


@dataclass
class Tool:
    """Base class. Subclasses set ``name``, ``instruction``, ``examples`` and implement ``run``.

    ``examples`` are (input, output) pairs in the paper's A.2 format: the output is the input with
    calls such as "[Calculator(400 / 1400) -> 0.29]" inserted before the words they help predict.
    """

    name: str = "Tool"
    description: str = ""
    instruction: str = ""
    examples: tuple[tuple[str, str], ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)

    is_toolformer_tool = True  # invoke_tools passes the raw string to these
    takes_input = True  # False: the sampled argument is dropped, the call is "[Name()]" (the paper's Calendar)

    # -- the prompt P(x) ------------------------------------------------------------------
    def prompt_prefix(self) -> str:
        """Everything of P(x) before x: instruction, examples, then "Input: "."""
        shots = "".join(f"Input: {i}\nOutput: {o}\n\n" for i, o in self.examples)
        return f"{self.instruction}\n\n{shots}Input: "

    def prompt(self, text: str) -> str:
        """P(x): the model then copies x after "Output:" and may insert calls."""
        return f"{self.prompt_prefix()}{text}\nOutput:"

    # -- the A.1 heuristic -----------------------------------------------------------------
    def selects(self, text: str) -> bool:
        """Whether this tool considers ``text`` at all (paper A.1). Default: every text."""
        return bool(text.strip())

    def selection_reason(self, text: str) -> str | None:
        """Why ``selects(text)`` holds, in a few words (for reports and the UI); None if it does not.

        Tools with a heuristic override both this and ``selects``.
        """
        return "any non-empty text (no heuristic)" if self.selects(text) else None

    def for_document(self, meta: dict | None) -> Tool:
        """This tool as it answers for one document (``meta``: the document's metadata, e.g. "date").

        Default: the same tool for every document. The Calendar returns the document's creation date.
        """
        return self

    def accepts_document(self, meta: dict | None) -> bool:
        """Whether the document's metadata allows this tool at all (the Calendar needs a known date)."""
        return True

    def keeps_call(self, text_before: str, text_after: str, input: str) -> bool:
        """Post-sampling filter on one call at a position (paper A.1, used by MT). Default: keep."""
        return True

    # -- the executor ------------------------------------------------------------------------
    def run(self, input: str) -> ToolResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def run_many(self, inputs: list[str]) -> list[ToolResult]:
        """``run`` for each input, in order. Tools whose executor is a model (QA, MT) batch it."""
        return [self.run(i) for i in inputs]

    def __call__(self, input: str = "") -> str:
        """Output string, or ToolError with the reason (so ``invoke_tools`` can apply its policy)."""
        result = self.run(input)
        if not result.ok:
            raise ToolError(result.reason or "no result")
        return result.output  # type: ignore[return-value]
