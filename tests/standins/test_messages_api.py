"""The Messages API stand-in reports prompt-cache usage the way the real API does, to the real anthropic client."""

import anthropic
import pytest
from standins.messages_api import (
    TEST_KEY,
    USAGE,
    Clock,
    MessagesAPI,
    estimate_tokens,
    text_answer,
    tool_answer,
    tool_calls,
)

TOOL = {"name": "Answer", "description": "the answer", "input_schema": {"type": "object", "properties": {}}}
SEARCH = {
    "name": "search_trials",
    "description": "search",
    "input_schema": {"type": "object", "properties": {}},
}


@pytest.fixture
def api():
    with MessagesAPI(clock=Clock()) as server:
        server.script("Answer", tool_answer({"ok": True}))
        yield server


def ask(api, *, system, user="the question", model="claude-sonnet-4-5", tools=(TOOL,), tool_choice=None):
    client = anthropic.Anthropic(api_key=TEST_KEY, base_url=api.base_url, max_retries=0)
    user_blocks = user if isinstance(user, list) else [{"type": "text", "text": user}]
    choice = tool_choice or {"type": "tool", "name": tools[0]["name"]}
    return client.messages.create(
        model=model,
        max_tokens=100,
        tools=list(tools),
        tool_choice=choice,
        system=system,
        messages=[{"role": "user", "content": user_blocks}],
    )


def cached(text, ttl="5m"):
    return {"type": "text", "text": text, "cache_control": {"type": "ephemeral", "ttl": ttl}}


def tokens(*blocks):
    """What the stand-in counts for these blocks (cache_control is no part of a block's bytes)."""
    return sum(estimate_tokens({k: v for k, v in b.items() if k != "cache_control"}) for b in blocks)


def test_tokens_are_four_characters_each_of_the_json():
    assert estimate_tokens("x" * 38) == 10  # '"' + 38 x + '"'
    assert estimate_tokens("x" * 39) == 11  # rounded up


def test_a_prefix_shorter_than_the_models_minimum_is_not_cached(api):
    tool = tokens(TOOL)
    short = cached("s" * 4 * (1024 - tool - 20))  # under 1024 tokens with the tool
    long = cached("l" * 4 * (1024 - tool + 20))
    assert tool + tokens(short) < 1024 < tool + tokens(long) < 2048
    below = ask(api, system=[short]).usage
    assert below.cache_creation_input_tokens == 0 and below.input_tokens == tool + tokens(short) + tokens(
        {"type": "text", "text": "the question"}
    )
    assert ask(api, system=[long]).usage.cache_creation_input_tokens == tool + tokens(long)
    # Haiku 4.5's minimum is 4096 tokens: the same prefix is not cached there
    assert ask(api, system=[long], model="claude-haiku-4-5").usage.cache_creation_input_tokens == 0


def test_the_longest_hit_is_read_and_the_rest_written_by_lifetime(api):
    brief = cached("b" * 8000, "1h")
    first_files = cached("f" * 2000, "5m")
    first = ask(api, system=[brief], user=[first_files, {"type": "text", "text": "wave 1"}]).usage
    prefix = tokens(TOOL, brief)
    files = tokens(first_files)
    assert (first.cache_read_input_tokens, first.cache_creation_input_tokens) == (0, prefix + files)
    assert first.cache_creation.ephemeral_1h_input_tokens == prefix
    assert first.cache_creation.ephemeral_5m_input_tokens == files
    assert first.input_tokens == tokens({"type": "text", "text": "wave 1"})

    second_files = cached(
        "g" * 2000, "5m"
    )  # the champion changed: its files are written again, the brief read
    second = ask(api, system=[brief], user=[second_files, {"type": "text", "text": "wave 2"}]).usage
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens) == (prefix, files)
    assert second.cache_creation.ephemeral_5m_input_tokens == files


def test_output_tokens_are_estimated_from_the_replys_content(api):
    api.script("Answer", text_answer("y" * 400))
    reply = ask(api, system="short")
    assert reply.usage.output_tokens == estimate_tokens([{"type": "text", "text": "y" * 400}])


def test_a_read_refreshes_an_entry_for_its_lifetime(api):
    brief = cached("b" * 8000, "5m")
    written = ask(api, system=[brief]).usage.cache_creation_input_tokens
    reads = []
    for minutes in (4, 4, 4, 6):  # read at 4 and 8 minutes (each read refreshes it); gone 6 minutes later
        api.clock.advance(minutes * 60)
        reads.append(ask(api, system=[brief]).usage.cache_read_input_tokens)
    assert reads == [written, written, written, 0]


def test_a_cache_is_the_models_and_the_prompts_own(api):
    brief = cached("b" * 8000, "1h")
    ask(api, system=[brief])
    assert ask(api, system=[brief], model="claude-opus-4-1").usage.cache_read_input_tokens == 0
    other = {**TOOL, "description": "another answer"}  # tools come first: a changed tool changes every prefix
    assert ask(api, system=[brief], tools=(other,)).usage.cache_read_input_tokens == 0
    assert ask(api, system=[brief]).usage.cache_read_input_tokens > 0


def test_more_than_four_breakpoints_are_refused(api):
    with pytest.raises(anthropic.BadRequestError, match="A maximum of 4 blocks with cache_control"):
        ask(api, system=[cached(f"part {i}", "1h") for i in range(5)])
    with pytest.raises(anthropic.BadRequestError, match="must not come after"):
        ask(api, system=[cached("a", "5m"), cached("b", "1h")])


def test_an_explicit_usage_is_reported_as_given(api):
    api.script("Answer", tool_answer({"ok": True}, usage=USAGE))
    usage = ask(api, system=[cached("b" * 8000)]).usage
    assert (usage.input_tokens, usage.output_tokens) == (USAGE["input_tokens"], USAGE["output_tokens"])
    assert usage.cache_read_input_tokens == USAGE["cache_read_input_tokens"]


def test_a_request_that_forces_no_tool_is_answered_from_its_first_tools_queue(api):
    def lookups(body):  # a function of the request: here, one lookup per tool offered
        return [("read_trial", {"trial_id": f"t{i}"}) for i, _ in enumerate(body["tools"])]

    api.script("search_trials", tool_calls(("search_trials", {"text": "learning rate"}), lookups))
    for choice in ({"type": "auto"}, {"type": "any"}):
        reply = ask(api, system="short", tools=(SEARCH, TOOL), tool_choice=choice)
        assert reply.stop_reason == "tool_use"
        assert [(b.name, b.input) for b in reply.content] == [
            ("search_trials", {"text": "learning rate"}),
            ("read_trial", {"trial_id": "t0"}),
            ("read_trial", {"trial_id": "t1"}),
        ]
        assert len({b.id for b in reply.content}) == 3
    forced = ask(api, system="short", tools=(SEARCH, TOOL), tool_choice={"type": "tool", "name": "Answer"})
    assert [(b.name, b.input) for b in forced.content] == [("Answer", {"ok": True})]
    assert len(api.for_tool("search_trials")) == 2 and len(api.for_tool("Answer")) == 1


def test_a_tool_without_a_script_gets_the_default_replies(api):
    with pytest.raises(anthropic.InternalServerError):  # no script: the stand-in says so
        ask(api, system="short", tools=(SEARCH, TOOL), tool_choice={"type": "auto"})
    api.script_default(text_answer("nothing to look up"))
    reply = ask(api, system="short", tools=(SEARCH, TOOL), tool_choice={"type": "auto"})
    assert reply.stop_reason == "end_turn" and reply.content[0].text == "nothing to look up"
    assert ask(api, system="short").content[0].name == "Answer"  # a scripted tool keeps its own
