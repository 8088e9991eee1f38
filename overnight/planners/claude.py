"""Claude as the research agent, through the real `anthropic` client wrapped by `instructor` (tool mode).

Every answer is validated inside the response model (edits apply exactly once, editable files only, Python parses,
no duplicates, no repeats of past trials), so instructor sends the errors back to Claude and retries. After the retry
limit, or when the API stays unavailable, the offline planner fills the wave and the plan says so. A rejected API key
stops the campaign: retrying cannot fix it.

The API key is read by the anthropic client from ANTHROPIC_API_KEY; overnight never reads, logs or forwards it.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import replace
from typing import Any

import anthropic
import instructor
from instructor.core.exceptions import InstructorRetryException
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, model_validator

from overnight.config import CampaignConfig
from overnight.errors import ExpectedError
from overnight.planners import prompts
from overnight.planners.base import (
    CrashedTrial,
    FinishedWave,
    MemoryQuery,
    Plan,
    PlanContext,
    Planner,
    Reflection,
    wave_report,
)
from overnight.planners.offline import OfflinePlanner
from overnight.pricing import Usage, cost_usd
from overnight.proposals import Edit, Proposal, ProposalError, apply_proposal, fingerprint

# instructor logs every failed attempt at ERROR ("Max retries exceeded..."); each is handled here and said once, in
# the wave's note, so its log would only repeat it on the console with a stack of its own.
logging.getLogger("instructor").setLevel(logging.CRITICAL)


class PlannerAuthError(ExpectedError, RuntimeError):
    """The API rejected the key (401/403): the campaign stops, since no retry can fix it."""


# --- the response models: what Claude must return -------------------------------------------------------------------


class EditBlock(BaseModel):
    path: str = Field(description="the file to edit, e.g. train.py")
    search: str = Field(description="exact text copied from the champion's file; must occur exactly once")
    replace: str = Field(description="the new text")


# One change as Claude proposes it: `WaveAnswer.proposals()` turns each into a Proposal. (A comment, not a docstring:
# a docstring would become part of the schema Claude reads.)
class ProposedChange(BaseModel):
    hypothesis: str = Field(description="one line: what changes and why it should help")
    rationale: str = Field(description="the reasoning, grounded in the results so far")
    expected_effect: str = Field(description="the effect expected on the metric, e.g. '-0.02 val_bpb'")
    edits: list[EditBlock] = Field(min_length=1)


class Level(BaseModel):
    label: str = Field(description="e.g. 'lr 2e-3'")
    edits: list[EditBlock] = Field(default_factory=list, description="empty = this factor as in the champion")


class Factor(BaseModel):
    name: str
    levels: list[Level] = Field(
        min_length=2, max_length=2, description="two levels: low (often the champion's) then high"
    )


class FactorialGrid(BaseModel):
    hypothesis: str = Field(description="what the grid is meant to reveal (main effects, interactions)")
    rationale: str
    factors: list[Factor] = Field(
        min_length=2, description="every combination of levels becomes one experiment"
    )


class WaveAnswer(BaseModel):
    """The next wave: single experiments and, optionally, one factorial grid; in all exactly the number asked."""

    # "experiments" is the word the prompt asks for (prompts.PLAN_TASK) and the key Claude answers with.
    experiments: list[ProposedChange] = Field(default_factory=list)
    factorial: FactorialGrid | None = None

    def proposals(self) -> list[Proposal]:
        found = [
            Proposal(
                hypothesis=e.hypothesis,
                rationale=e.rationale,
                expected=e.expected_effect,
                edits=[Edit(**b.model_dump()) for b in e.edits],
                source="claude",
            )
            for e in self.experiments
        ]
        if self.factorial:
            grid = self.factorial
            for combination in itertools.product(*(f.levels for f in grid.factors)):
                labels = ", ".join(
                    f"{f.name}={level.label}" for f, level in zip(grid.factors, combination, strict=True)
                )
                edits = [Edit(**b.model_dump()) for level in combination for b in level.edits]
                found.append(
                    Proposal(
                        hypothesis=f"{grid.hypothesis} [{labels}]",
                        rationale=grid.rationale,
                        edits=edits,
                        source="claude",
                        factors={
                            f.name: (level.label, f.levels.index(level))
                            for f, level in zip(grid.factors, combination, strict=True)
                        },
                    )
                )
        return found

    def size(self) -> int:
        """How many experiments the answer holds, a grid's cells counted without expanding them."""
        cells = math.prod(len(f.levels) for f in self.factorial.factors) if self.factorial else 0
        return len(self.experiments) + cells

    @model_validator(mode="after")
    def _runs_as_written(self, info: ValidationInfo) -> WaveAnswer:
        context = info.context or {}
        if "champion_files" in context:
            if self.size() > context["n"]:  # refused before a grid of 2^18 cells is expanded and applied
                raise ValueError(prompts.validation_feedback([_size_error(self.size(), context["n"])]))
            errors = check_wave(self.proposals(), **context)
            if errors:
                raise ValueError(prompts.validation_feedback(errors))
        return self


class Insights(BaseModel):
    learned: list[str] = Field(description="what this wave taught, with the numbers")
    dead_ends: list[str] = Field(default_factory=list, description="directions not worth another trial")
    next_directions: list[str] = Field(
        default_factory=list, description="what to try next, most promising first"
    )


def check_wave(
    proposals: list[Proposal],
    *,
    champion_files: dict[str, str],
    editable: list[str],
    seen: dict[str, str],
    n: int,
    suggestions: int = 0,
) -> list[str]:
    """Every reason the wave cannot run as written; empty when it can. `seen` maps fingerprints to past trial ids."""
    errors = []
    answered = sum(1 for p in proposals if p.hypothesis.startswith(prompts.SUGGESTION_PREFIX))
    if answered < suggestions:
        errors.append(
            f"{suggestions} human suggestions need an experiment each (hypothesis starting with "
            f"'{prompts.SUGGESTION_PREFIX}'); found {answered}"
        )
    if len(proposals) != n:
        errors.append(_size_error(len(proposals), n))
    mine: dict[str, int] = {}
    for number, proposal in enumerate(proposals, start=1):
        label = f"experiment {number} ({proposal.hypothesis[:60]})"
        try:
            key = fingerprint(apply_proposal(champion_files, proposal, editable))
        except ProposalError as error:
            errors.append(f"{label}: {error}")
            continue
        if (
            key in seen and not proposal.factors
        ):  # a grid's cells may repeat a run (its low corner: the champion)
            errors.append(
                f"{label} gives the same files as trial {seen[key]}, already run: propose something new"
            )
        elif key in mine:
            errors.append(f"{label} is identical to experiment {mine[key]}")
        mine.setdefault(key, number)
    return errors


def _size_error(size: int, n: int) -> str:
    return f"the wave has {size} experiments (factorial combinations included); give exactly {n}"


# The answer tool as instructor offers it (its name, description and schema are WaveAnswer's): offered beside the
# memory tools, Claude can answer in the conversation in which it queried, and instructor's call is then not needed.
ANSWER_TOOL = instructor.openai_schema(WaveAnswer).anthropic_schema
RESEARCH_TOOLS = [*prompts.MEMORY_TOOLS, ANSWER_TOOL]


def describe_request(request: dict) -> str:
    """A request of `ClaudePlanner.first_request` as a person reads it: the system text, the tools offered (their
    names and descriptions; the answer's JSON schema is WaveAnswer's), and the user turn, with where the cache ends."""
    lines = ["--- system ---", *(block["text"] for block in request["system"]), "--- tools ---"]
    lines += [f"{tool['name']}: {tool['description']}" for tool in request["tools"]]
    lines.append("--- user ---")
    for block in request["content"]:
        lines.append(block["text"])
        if "cache_control" in block:
            lines.append(f"[--- cached for {block['cache_control']['ttl']} up to here ---]")
    return "\n".join(lines)


# --- the planner ----------------------------------------------------------------------------------------------------


class ClaudePlanner(Planner):
    name = "claude"
    reads_memory_to_reflect = True  # the reflection prompt carries a digest of the campaign's memory
    repairs_crashes = True  # repair() reads the traceback of a trial that crashed before its first result

    def __init__(self, config: CampaignConfig, client: anthropic.Anthropic | None = None):
        self.config = config
        self.settings = config.planner
        self.raw = client or anthropic.Anthropic(
            max_retries=self.settings.http_retries, timeout=self.settings.timeout_s
        )
        self.client = instructor.from_anthropic(self.raw, mode=instructor.Mode.ANTHROPIC_TOOLS)
        self.offline = OfflinePlanner(config)

    def prompt(self, context: PlanContext) -> prompts.Prompt:
        """The plan prompt, with as much history as fits the token limit: old groups of trials shrink to counts
        first, then the listing of recent ones (prompts.LEVELS); the champion's files are never cut."""
        facts = prompts.facts_text(context.facts, self.config.metric.name)
        settled, which = prompts.settled_trials(context.memory)
        for level in prompts.LEVELS:
            text = prompts.plan_prompt(
                brief=context.brief,
                champion_files=context.champion_files,
                digest=prompts.digest(context.memory, level, settled),
                settled=prompts.settled_history(context.memory, settled, which, level),
                n=context.n,
                editable=self.config.editable,
                metric=self.config.metric.name,
                budget_left=context.budget_left,
                suggestions=context.suggestions,
                facts=facts,
                in_wave=context.in_wave,
            )
            if prompts.estimate_tokens(prompts.SYSTEM + text.text) <= self.settings.max_prompt_tokens:
                break
        return text

    def propose(self, context: PlanContext) -> Plan:
        prompt = self.prompt(context)
        validation = self._validation(context, context.n, len(context.suggestions))
        usage: list[Usage] = []
        researched: list[Usage] = []  # the rounds of the conversation in which Claude may query the memory
        queries: list[MemoryQuery] = []
        note = ""
        try:
            try:
                answer, feedback = self._research(prompt, context, validation, researched, queries)
            except anthropic.APIError as error:  # the memory is a help: the wave can be planned without it
                answer, feedback = None, ""
                note = f"Claude's memory queries failed ({_describe_api_error(error)}); it planned without them. "
            if answer is None:  # no valid answer in the conversation: instructor asks for it, and corrects it
                found = [(q.tool, q.arguments, q.answer) for q in queries]
                asked = replace(prompt, rest=prompt.rest + prompts.answer_block(found, feedback))
                answer = self._ask(asked, WaveAnswer, usage, validation)
            proposals = answer.proposals()
        except InstructorRetryException as error:
            proposals = self._salvage(error, validation)
            note = (
                f"Claude's answer failed validation {self.settings.validation_retries + 1} times "
                f"(last: {_first_line(error)}); "
            )
        except anthropic.APIError as error:
            proposals, note = [], f"Claude was unavailable ({_describe_api_error(error)}); "
        proposals, filled = self._fill(context, proposals)
        research = sum(researched, Usage())
        total = sum(usage, research)
        return Plan(
            proposals,
            total,
            cost_usd(self.settings.model, total),
            (note + filled).strip(),
            prompt.text,
            tuple(queries),
            research,
            cost_usd(self.settings.model, research),
        )

    def _validation(self, context: PlanContext, n: int, suggestions: int = 0) -> dict:
        """What an answer is validated against (`check_wave`): the champion's files, the trials already run."""
        return {
            "champion_files": context.champion_files,
            "editable": self.config.editable,
            "seen": {t.fingerprint: t.trial_id for t in context.history if t.fingerprint},
            "n": n,
            "suggestions": suggestions,
        }

    def _fill(self, context: PlanContext, proposals: list[Proposal]) -> tuple[list[Proposal], str]:
        """The wave completed by the offline planner where Claude gave fewer valid proposals than asked."""
        if len(proposals) >= context.n:
            return proposals, ""
        exclude = {
            fingerprint(apply_proposal(context.champion_files, p, self.config.editable)) for p in proposals
        }
        filled = self.offline.proposals(context, context.n - len(proposals), exclude)
        return proposals + filled, f"{len(filled)} of {context.n} proposals filled by the offline planner."

    def _research(
        self,
        prompt: prompts.Prompt,
        context: PlanContext,
        validation: dict,
        usage: list[Usage],
        queries: list[MemoryQuery],
    ) -> tuple[WaveAnswer | None, str]:
        """One conversation in which Claude queries the campaign's memory (the tools answered by `context.lookup`,
        at most `planner.memory_tool_calls` queries in all) and then answers with the wave's own tool. Every round
        offers the same tools, so each reads the one before from the prompt cache. Returns the answer when it is
        valid, else None and why it failed (or "" when Claude gave none): instructor then asks for it. Every
        round's tokens go to `usage`, every query to `queries`."""
        limit = self.settings.memory_tool_calls
        if not self._researches(context):
            return None, ""
        messages: list[dict] = [{"role": "user", "content": self._research_opening(prompt)}]
        for _ in range(limit + 1):  # each round queries at least once, or ends the conversation
            response = self._call(
                model=self.settings.model,
                max_tokens=self.settings.max_output_tokens,
                system=self.system(),
                tools=RESEARCH_TOOLS,
                messages=self._cached_conversation(messages),
            )
            usage.append(_usage(response))
            calls = [block for block in response.content if block.type == "tool_use"]
            answered = next((call for call in calls if call.name == ANSWER_TOOL["name"]), None)
            if answered is not None:
                try:
                    return WaveAnswer.model_validate(answered.input, context=validation), ""
                except ValidationError as error:
                    return None, "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
            if not calls or len(queries) >= limit:
                return None, ""
            results = [self._answer_query(call, context.lookup, queries, limit) for call in calls]
            messages += [
                {"role": "assistant", "content": [_block(b) for b in response.content]},
                {"role": "user", "content": results},
            ]
        return None, ""

    def _researches(self, context: PlanContext) -> bool:
        return bool(self.settings.memory_tool_calls) and context.lookup is not None

    def _research_opening(self, prompt: prompts.Prompt) -> list[dict]:
        task = {"type": "text", "text": prompts.RESEARCH_TASK.format(calls=self.settings.memory_tool_calls)}
        return [*self.user_content(prompt), task]

    def first_request(self, context: PlanContext) -> dict:
        """What the plan's first call sends: the research conversation's first round, or instructor's call when
        no memory can be queried (`overnight plan --show-prompt` prints it, `describe_request`)."""
        prompt = self.prompt(context)
        if self._researches(context):
            return {
                "system": self.system(),
                "tools": RESEARCH_TOOLS,
                "content": self._research_opening(prompt),
            }
        return {"system": self.system(), "tools": [ANSWER_TOOL], "content": self.user_content(prompt)}

    def _cached_conversation(self, messages: list[dict]) -> list[dict]:
        """The conversation with its newest turn marked for the cache (5 minutes: the next round is seconds away),
        so that the next round reads all of it back; the prompt's own marks stay as they are. Not in the first
        round: most waves are answered there, and a write no round reads costs a quarter more than input."""
        if self.settings.cache == "off" or len(messages) == 1:
            return messages
        marked = [dict(m, content=[dict(b) for b in m["content"]]) for m in messages]
        marked[-1]["content"][-1]["cache_control"] = {"type": "ephemeral", "ttl": "5m"}
        return marked

    @staticmethod
    def _answer_query(call: Any, lookup, queries: list[MemoryQuery], limit: int) -> dict:
        """One tool call answered (and added to `queries`), as the tool_result block that goes back to Claude."""
        arguments = dict(call.input or {})
        if len(queries) >= limit:
            answer, failed = f"the limit of {limit} queries is reached: answer with the wave now", True
        else:
            try:
                answer, failed = lookup(call.name, arguments), False
            except ValueError as error:  # overnight.memory.queries.QueryError: a query it cannot answer
                answer, failed = f"error: {error}", True
            queries.append(MemoryQuery(call.name, arguments, answer, failed))
        return {"type": "tool_result", "tool_use_id": call.id, "content": answer, "is_error": failed}

    def _call(self, **request: Any) -> Any:
        """A plain Messages API call (no response model); a rejected key stops the campaign."""
        try:
            return self.raw.messages.create(**request)
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as error:
            raise _key_rejected(error) from None

    def repair(self, context: PlanContext, crashed: CrashedTrial) -> Plan:
        """One call: Claude reads the crashed proposal and its traceback and answers with one fixed experiment,
        validated like a wave of one (the answer tool and the prompt's cached start are the plan call's, so the
        cache it wrote is read). No repair when the answer stays invalid or the API is unavailable."""
        prompt = prompts.repair_prompt(
            plan=self.prompt(context),
            hypothesis=crashed.proposal.hypothesis,
            edits=crashed.proposal.edits,
            reason=crashed.reason,
            log_tail=crashed.log_tail,
            editable=self.config.editable,
        )
        validation = self._validation(context, 1)
        usage: list[Usage] = []
        try:
            proposals, note = self._ask(prompt, WaveAnswer, usage, validation).proposals()[:1], ""
        except InstructorRetryException as error:
            proposals, note = (
                [],
                f"Claude's repair of {crashed.trial_id} failed validation ({_first_line(error)})",
            )
        except anthropic.APIError as error:
            proposals, note = (
                [],
                f"Claude was unavailable to repair {crashed.trial_id} ({_describe_api_error(error)})",
            )
        total = sum(usage, Usage())
        return Plan(proposals, total, cost_usd(self.settings.model, total), note, prompt.text)

    def reflect(self, outcome: FinishedWave, context: PlanContext | None = None) -> Reflection:
        report = wave_report(outcome)
        if context:
            settled, which = prompts.settled_trials(context.memory)
            digest = prompts.digest(context.memory, prompts.REFLECT, settled)
            old = prompts.settled_history(context.memory, settled, which, prompts.REFLECT)
            prompt = prompts.reflect_prompt(
                brief=context.brief, wave_report=report, digest=digest, settled=old
            )
        else:
            prompt = prompts.reflect_prompt(brief="", wave_report=report, digest="")
        usage: list[Usage] = []
        try:
            insights = self._ask(prompt, Insights, usage, None)
        except (InstructorRetryException, anthropic.APIError) as error:
            reason = (
                _describe_api_error(error) if isinstance(error, anthropic.APIError) else _first_line(error)
            )
            text = (
                report
                + f"\n_Claude's reflection was unavailable ({reason}); the table above is the record._\n"
            )
            total = sum(usage, Usage())
            return Reflection(text, total, cost_usd(self.settings.model, total))
        sections = [
            ("What we learned", insights.learned),
            ("Dead ends", insights.dead_ends),
            ("Next directions", insights.next_directions),
        ]
        text = report + "".join(
            f"\n### {title}\n" + "".join(f"- {item}\n" for item in items)
            for title, items in sections
            if items
        )
        total = sum(usage, Usage())
        return Reflection(text, total, cost_usd(self.settings.model, total))

    def system(self) -> list[dict]:
        return [{"type": "text", "text": prompts.SYSTEM}]

    def user_content(self, prompt: prompts.Prompt | str) -> list[dict]:
        """The user turn as content blocks, the prompt's slow-changing parts marked for the cache (`planner.cache`):
        the brief outlives every champion, the settled history a few waves, the files the champion. Later calls
        read back from Anthropic's cache the tools, the system text and the parts that did not change."""
        if isinstance(prompt, str):
            return [{"type": "text", "text": prompt}]
        blocks = []
        for text, cached in prompt.parts:
            blocks.append({"type": "text", "text": text})
            if cached and self.settings.cache != "off":
                blocks[-1]["cache_control"] = {"type": "ephemeral", "ttl": self.settings.cache}
        return blocks

    def _ask(
        self,
        prompt: prompts.Prompt | str,
        model: type[BaseModel],
        usage: list[Usage],
        validation: dict | None,
    ) -> Any:
        """One structured call; counts the tokens of every attempt, retries included."""

        def count(response: Any) -> None:
            usage.append(_usage(response))

        self.client.on("completion:response", count)
        try:
            return self.client.messages.create(
                model=self.settings.model,
                max_tokens=self.settings.max_output_tokens,
                system=self.system(),
                messages=[{"role": "user", "content": self.user_content(prompt)}],
                response_model=model,
                max_retries=self.settings.validation_retries,  # instructor: retries after the first attempt
                context=validation,
            )
        except (anthropic.AuthenticationError, anthropic.PermissionDeniedError) as error:
            raise _key_rejected(error) from None
        except InstructorRetryException as error:
            cause = _api_cause(error)
            if isinstance(cause, (anthropic.AuthenticationError, anthropic.PermissionDeniedError)):
                raise _key_rejected(cause) from None
            if isinstance(cause, anthropic.APIError):
                raise cause from None
            raise
        finally:
            self.client.off("completion:response", count)

    def _salvage(self, error: Exception, validation: dict) -> list[Proposal]:
        """Keep the experiments of Claude's last answer that are valid on their own."""
        completion = getattr(error, "last_completion", None)
        blocks = [b for b in getattr(completion, "content", []) or [] if getattr(b, "type", "") == "tool_use"]
        if not blocks:
            return []
        try:
            answer = WaveAnswer.model_validate(blocks[0].input)
        except ValidationError:
            return []
        if answer.size() > validation["n"]:  # a grid too large: its single experiments may still do
            answer = answer.model_copy(update={"factorial": None})
        kept, seen = [], dict(validation["seen"])
        for proposal in answer.proposals():
            one = {**validation, "seen": seen, "n": 1, "suggestions": 0}
            if not check_wave([proposal], **one):
                kept.append(proposal)
                seen[
                    fingerprint(
                        apply_proposal(validation["champion_files"], proposal, validation["editable"])
                    )
                ] = "?"
        return kept[: validation["n"]]


def _usage(response: Any) -> Usage:
    u = getattr(response, "usage", None)
    lifetimes = getattr(u, "cache_creation", None)  # the 5-minute and 1-hour parts of the cache writes
    return Usage(
        input_tokens=getattr(u, "input_tokens", 0) or 0,
        output_tokens=getattr(u, "output_tokens", 0) or 0,
        cache_creation_tokens=getattr(u, "cache_creation_input_tokens", 0) or 0,
        cache_read_tokens=getattr(u, "cache_read_input_tokens", 0) or 0,
        calls=1,
        cache_creation_1h_tokens=getattr(lifetimes, "ephemeral_1h_input_tokens", 0) or 0,
    )


def _key_rejected(error: anthropic.APIError) -> PlannerAuthError:
    return PlannerAuthError(
        f"the Anthropic API rejected the key ({_describe_api_error(error)}): check ANTHROPIC_API_KEY. "
        "Trials recorded so far are kept."
    )


def _block(block: Any) -> dict:
    """A content block of Claude's answer as it goes back in the conversation."""
    if block.type == "tool_use":
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}
    return {"type": "text", "text": getattr(block, "text", "")}


def _api_cause(error: BaseException) -> BaseException | None:
    seen = error
    while seen is not None:
        if isinstance(seen, anthropic.APIError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _describe_api_error(error: anthropic.APIError) -> str:
    status = getattr(error, "status_code", None)
    return f"HTTP {status}: {type(error).__name__}" if status else type(error).__name__


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__
