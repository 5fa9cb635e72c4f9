"""pi's message_update lines are classified without parsing them (one per streamed token): both
the line pi 0.73.1 prints (assistantMessageEvent first, with the cumulative `partial`) and the
delta-only line of pi >= 0.84 (usage first). The lines are as pi 0.73.1 and 1.6.0 printed them
(`--mode json -p`, a fake server's text answer cut by its length limit), shortened."""
import pytest

from pytest_tbreplay.harnesses.pi.events import update_kind

USAGE = (b'"usage":{"input":606,"output":6,"cacheRead":0,"cacheWrite":0,"reasoning":0,"totalTokens":612,'
         b'"cost":{"input":0,"output":0,"cacheRead":0,"cacheWrite":0,"total":0,"totalFromProvider":false}}')
PI_16 = b'{"type":"message_update",' + USAGE + b',"assistantMessageEvent":{"type":"%s","contentIndex":0,"delta":"mid"}}'
PI_073 = (b'{"type":"message_update","assistantMessageEvent":{"type":"%s","contentIndex":0,"delta":"mid",'
          b'"partial":{"role":"assistant","content":[{"type":"text","text":"mid"}]}}}')


@pytest.mark.parametrize("line", [PI_16, PI_073], ids=["pi 1.6.0", "pi 0.73.1"])
@pytest.mark.parametrize("event, kind", [(b"text_delta", "text"), (b"thinking_delta", "reasoning"),
                                         (b"toolcall_delta", "tool"), (b"text_start", ""), (b"text_end", "")])
def test_a_token_update_is_classified_on_both_pis(line, event, kind):
    assert update_kind(line % event) == kind


def test_other_lines_are_events():
    assert update_kind(b'{"type":"message_end","message":{"role":"assistant"}}') is None
    assert update_kind(b'{"type":"message_update","message":{}}') == ""  # an update, but no token
