"""``llada-tts generate`` (and ``synthesis.text_gen``, its API) on a tiny text model trained a few steps by
the pretrain recipe: the reference sampler's output per method, the chat template, the REPL, the seed
scripts' flag spellings, the gen_length cap, bad input."""
from __future__ import annotations

import io

import pytest
import torch
from text_fixtures import cached_model_loading, loaded, text_checkpoint, tts_only_copy  # noqa: F401  (fixtures)

from audio_tokenizer import layout as L
from llada_tts.cli import build_parser, main
from llada_tts.commands.generate import prompt_ids
from llada_tts.sampling import SamplerConfig, generate, sample
from llada_tts.synthesis import SynthesisError
from llada_tts.synthesis.defaults import MAX_GEN_LENGTH, check_text_sampler_options
from llada_tts.synthesis.text_gen import (
    answer_ids,
    answer_text,
    generate_text,
    text_generator,
    text_options,
    text_stop_ids,
)

pytestmark = pytest.mark.usefixtures("cached_model_loading")
PROMPT = "the cat sat on"
FAST = ["--gen-length", "16", "--block-length", "4", "--steps", "8"]


@pytest.fixture(scope="module")
def model_tok(text_checkpoint):
    return loaded(text_checkpoint)


def run(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["generate", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("llada-tts generate: error: "), err
    return lines[0]


def reference(model, tok, ids, method, seed, gen_length=16, block_length=4, steps=8, **kw) -> str:
    """The library's answer, cut at the first end of text: ``generate()`` (LLaDA's algorithm, a separate
    implementation from the ``sample()`` the command runs) for fixed_length / padding. For origin,
    ``generate()`` has no growing canvas, so this calls the same ``sample()`` the command calls: it checks
    the command's plumbing (options, seed, stop ids, the cut, streaming), not the sampler;
    ``test_origin_equals_an_independent_block_by_block_generate`` checks origin against ``generate()``."""
    gen = torch.Generator().manual_seed(seed)
    if method == "semi_autoregressive_origin":
        config = SamplerConfig(method=method, gen_length=gen_length, block_length=block_length, steps=steps,
                               stop_ids=text_stop_ids(), **kw)
        out = sample(model, ids, config, generator=gen).generated[0]
    else:
        block = gen_length if method == "fixed_length" else block_length
        out = generate(model, torch.tensor(ids), gen_length=gen_length, steps=steps, block_length=block,
                       mask_id=L.MASK_ID, generator=gen, **kw)[0, len(ids):]
    return answer_text(tok, answer_ids(out.tolist(), set(text_stop_ids())))


# --- the reference output ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["fixed_length", "semi_autoregressive_padding", "semi_autoregressive_origin"])
def test_generate_equals_the_reference_generate_per_method(capsys, text_checkpoint, model_tok, method):
    """Greedy tokens with guidance and seeded random remasking (so the order and the tokens both
    depend on the model and the seed); printed (streamed) text = the reference's, then a newline."""
    model, tok = model_tok
    code, out, err = run(capsys, PROMPT, "--model", text_checkpoint, "--method", method, *FAST, "--cfg", 3,
                         "--remasking", "random", "--seed", 5)
    assert code == 0, err
    want = reference(model, tok, prompt_ids(tok, PROMPT), method, 5, cfg_scale=3.0, remasking="random")
    assert out == want + "\n"
    assert "<|mdm_mask|>" not in out and "<|eot_id|>" not in out and "<custom_token_" not in out


@pytest.mark.parametrize("remasking", ["low_confidence", "random"])
def test_origin_equals_an_independent_block_by_block_generate(capsys, text_checkpoint, model_tok, remasking):
    """semi_autoregressive_origin against ``generate()`` (a separate implementation): the canvas grows
    one block at a time, so block k is ``generate()`` of one block after the prompt + the k committed
    blocks, until a block holds an end of text. Sampled at temperature 1 (the greedy tiny model repeats
    one token), without guidance: its unconditional pass masks only the user's prompt, which
    ``generate()`` on a grown prompt cannot express."""
    model, tok = model_tok
    code, out, err = run(capsys, PROMPT, "--model", text_checkpoint, "--method", "semi_autoregressive_origin",
                         *FAST, "--remasking", remasking, "--temperature", 1, "--seed", 3)
    assert code == 0, err
    gen, ids, stop = torch.Generator().manual_seed(3), prompt_ids(tok, PROMPT), set(text_stop_ids())
    grown: list[int] = []
    for _ in range(16 // 4):
        x = generate(model, torch.tensor(ids + grown), gen_length=4, steps=8 // 4, block_length=4,
                     mask_id=L.MASK_ID, remasking=remasking, temperature=1.0, generator=gen)
        grown += x[0, len(ids) + len(grown):].tolist()
        if stop & set(grown):
            break
    assert len(set(grown)) > 2  # temperature 1: the tokens depend on the draws, so their order is checked too
    assert out == answer_text(tok, answer_ids(grown, stop)) + "\n"


def test_temperature_sampling_follows_the_seed(capsys, text_checkpoint, model_tok):
    model, tok = model_tok
    args = [PROMPT, "--model", text_checkpoint, *FAST, "--temperature", 1]
    code, out, _ = run(capsys, *args, "--seed", 7)
    config = SamplerConfig(method="semi_autoregressive_padding", gen_length=16, block_length=4, steps=8,
                           temperature=1.0, stop_ids=text_stop_ids(), stop_at_end=True)
    ref = sample(model, prompt_ids(tok, PROMPT), config, generator=torch.Generator().manual_seed(7)).generated[0]
    assert code == 0 and out == answer_text(tok, answer_ids(ref.tolist(), set(text_stop_ids()))) + "\n"
    assert run(capsys, *args, "--seed", 7)[1] == out
    assert run(capsys, *args, "--seed", 8)[1] != out


def test_answer_is_cut_at_end_of_text_and_never_shows_mask_or_fill(offline_tokenizer):
    ids = [*offline_tokenizer("hi")["input_ids"], L.END_OF_TEXT_ID, L.PAD_ID, L.MASK_ID, 104]
    cut = answer_ids(ids, set(text_stop_ids()))
    assert cut == offline_tokenizer("hi")["input_ids"] and answer_text(offline_tokenizer, cut) == "hi"
    assert answer_text(offline_tokenizer, [104, L.MASK_ID, L.PAD_ID, 105]) == "hi"  # specials are never printed


def test_semi_autoregressive_output_streams_block_by_block(capsys, text_checkpoint, monkeypatch):
    """Each finished block is written (and flushed) before the next one is decoded."""
    import sys

    writes = []

    class Spy(io.StringIO):
        def write(self, s):
            writes.append(s)
            return super().write(s)

    monkeypatch.setattr(sys, "stdout", Spy())
    assert main(["generate", PROMPT, "--model", str(text_checkpoint), *FAST, "--cfg", "3"]) == 0
    text = "".join(writes)
    assert text.endswith("\n") and len([w for w in writes if w.strip()]) >= 2


# --- chat -----------------------------------------------------------------------------------------

def test_chat_renders_the_checkpoints_chat_template(capsys, text_checkpoint, model_tok, monkeypatch):
    model, tok = model_tok
    seen = []
    real = sample

    def spy(model_, ids, config, **kw):
        seen.append(list(ids))
        return real(model_, ids, config, **kw)

    monkeypatch.setattr("llada_tts.sampling.sample", spy)
    messages = [{"role": "user", "content": "hello"}]
    want_ids = list(tok.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            add_generation_prompt=True)["input_ids"])
    for flag in ("--chat", "--is_instruct"):
        code, out, err = run(capsys, "hello", "--model", text_checkpoint, *FAST, "--cfg", 3, flag)
        assert code == 0, err
        assert seen[-1] == want_ids
        assert out == reference(model, tok, want_ids, "semi_autoregressive_padding", 0, cfg_scale=3.0) + "\n"
    rendered = tok.decode(seen[-1])
    assert rendered.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhello<|eot_id|>")
    assert rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    run(capsys, "hello", "--model", text_checkpoint, *FAST)
    assert seen[-1] == prompt_ids(tok, "hello") == [L.BOS_ID, *tok("hello", add_special_tokens=False)["input_ids"]]


def test_repl_keeps_the_conversation_resets_and_quits_cleanly_on_eof(capsys, text_checkpoint, model_tok,
                                                                      monkeypatch):
    seen = []
    real = sample

    def spy(model_, ids, config, **kw):
        seen.append(list(ids))
        return real(model_, ids, config, **kw)

    monkeypatch.setattr("llada_tts.sampling.sample", spy)
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\nand more\n/reset\nagain\n"))  # then EOF
    code, out, err = run(capsys, "--model", text_checkpoint, "--interactive", "--gen-length", 8, "--block-length", 4,
                         "--steps", 4)
    assert code == 0 and "Traceback" not in err and "error" not in err
    tok = model_tok[1]
    turns = [tok.decode(ids) for ids in seen]
    assert len(turns) == 3
    assert "hello" in turns[1] and "and more" in turns[1] and turns[1].count("assistant") == 2  # history kept
    assert "hello" not in turns[2] and "again" in turns[2]  # /reset forgot it
    assert out.count(">>> ") == 5  # a prompt per line read, and one more that met EOF


def test_repl_exit_command_and_a_first_prompt(capsys, text_checkpoint, monkeypatch):
    seen = []
    real = sample
    monkeypatch.setattr("llada_tts.sampling.sample", lambda m, ids, c, **kw: seen.append(ids) or real(m, ids, c, **kw))
    monkeypatch.setattr("sys.stdin", io.StringIO("/exit\nnever asked\n"))
    code, _, err = run(capsys, "first question", "--model", text_checkpoint, "--interactive", "--gen-length", 4,
                       "--block-length", 4, "--steps", 4)
    assert code == 0 and len(seen) == 1, err


# --- options --------------------------------------------------------------------------------------

def test_the_seed_scripts_spellings_are_aliases_of_ours():
    parser = build_parser()
    ours = parser.parse_args(["generate", "hi", "--model", "ck", "--method", "fixed_length", "--remasking", "random",
                              "--gen-length", "64", "--block-length", "8", "--steps", "64", "--cfg", "1.5",
                              "--chat"])
    seed = parser.parse_args(["generate", "hi", "--model_name_or_path", "ck", "--sampling_method", "fixed_length",
                              "--remasking_strategy", "random", "--gen_length", "64", "--block_length", "8",
                              "--steps", "64", "--cfg_scale", "1.5", "--is_instruct"])
    assert vars(ours) == vars(seed)


def test_generate_flags_come_from_the_one_option_table():
    from llada_tts.synthesis.defaults import OPTIONS, TEXT_SAMPLER_OPTIONS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    group = next(g for g in sub.choices["generate"]._action_groups if g.title == "sampler")
    flags = {a.option_strings[0]: a for a in group._group_actions}
    assert list(flags) == [o.flag for o in TEXT_SAMPLER_OPTIONS]
    for o in TEXT_SAMPLER_OPTIONS:
        assert flags[o.flag].option_strings == [o.flag, *o.aliases]
        if o.name not in ("gen_length", "steps", "block_length"):  # the rows shared with `say`, unchanged
            assert (o.flag, o.kind, o.choices, o.low, o.high) == (OPTIONS[o.name].flag, OPTIONS[o.name].kind,
                                                                  OPTIONS[o.name].choices, OPTIONS[o.name].low,
                                                                  OPTIONS[o.name].high)


# --- bad input: one line, exit 2 --------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["", "--model", "CK"], "the prompt is empty"),
    (["  \n", "--model", "CK"], "the prompt is empty"),
    (["--model", "CK"], "no prompt"),
    (["hi", "--model", "CK", "--gen-length", "10", "--block-length", "4"], "must be a multiple of --block-length"),
    (["hi", "--model", "CK", "--gen-length", "16", "--block-length", "4", "--steps", "6"], "divisible by the number"),
    (["hi", "--model", "CK", "--threshold", "0.9", "--remasking", "random"], "low_confidence"),
    (["hi", "--model", "CK/nope"], "no checkpoint folder"),
])
def test_bad_input_is_one_line_before_loading(capsys, tmp_path, args, message):
    args = [a.replace("CK", str(tmp_path)) for a in args]
    code, out, err = run(capsys, *args)
    assert code == 2 and out == "" and message in one_error_line(err)


def test_gen_length_need_not_divide_for_fixed_length(capsys, text_checkpoint):
    code, _, err = run(capsys, "hi", "--model", text_checkpoint, "--method", "fixed_length", "--gen-length", 6,
                       "--block-length", 4, "--steps", 6)
    assert code == 0, err


def test_a_tts_only_checkpoint_is_refused(capsys, tmp_path, text_checkpoint):
    tts = tts_only_copy(text_checkpoint, tmp_path / "tts_ckpt")
    code, out, err = run(capsys, "hi", "--model", tts)
    assert code == 2 and out == "" and "TTS-only checkpoint" in one_error_line(err)


def test_a_prompt_longer_than_the_context_is_refused(capsys, text_checkpoint, model_tok):
    context = model_tok[0].config.max_position_embeddings
    code, out, err = run(capsys, "x" * context, "--model", text_checkpoint, *FAST)
    line = one_error_line(err)
    assert code == 2 and out == "" and f"the model's context of {context} tokens" in line


def test_an_unknown_method_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "hi", "--method", "nope"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


# --- the gen_length cap (hostile sizes never reach the model) ---------------------------------------

@pytest.mark.parametrize("value", [MAX_GEN_LENGTH + 1, 131072, 10**30])
def test_gen_length_above_the_cap_is_refused_at_parse_time(capsys, value):
    """A Llama config may claim a context of 131072: the cap is MAX_GEN_LENGTH, not the context, and
    it is refused before anything is loaded (no --model needed)."""
    with pytest.raises(SystemExit) as e:
        main(["generate", "hi", "--gen-length", str(value), "--block-length", "4", "--method", "fixed_length"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and f"<= {MAX_GEN_LENGTH}" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("value", [MAX_GEN_LENGTH + 1, 131072, 10**30, 10**30 + 0.0])
def test_gen_length_above_the_cap_is_refused_by_the_api(value):
    for check in (check_text_sampler_options, text_options):
        with pytest.raises(SynthesisError, match=f"gen_length must be at most {MAX_GEN_LENGTH}") as e:
            check({"gen_length": value, "method": "fixed_length"})
        assert len(str(e.value)) < 200  # a huge value is shown cut short
    assert text_options({"gen_length": MAX_GEN_LENGTH, "method": "fixed_length"})["gen_length"] == MAX_GEN_LENGTH


def test_gen_length_never_exceeds_the_models_context(capsys, text_checkpoint, model_tok, monkeypatch):
    """Under the cap but over the model's context with the prompt: one line, and the sampler never runs
    (from the command, and from the API, which checks it too)."""
    model, tok = model_tok
    context = model.config.max_position_embeddings
    assert context < MAX_GEN_LENGTH  # the tiny model: 2048
    monkeypatch.setattr("llada_tts.sampling.sample", lambda *a, **k: pytest.fail("sampled past the context"))
    code, out, err = run(capsys, PROMPT, "--model", text_checkpoint, "--method", "fixed_length", "--gen-length",
                         context, "--steps", 4)
    assert code == 2 and out == "" and f"> the model's context of {context} tokens" in one_error_line(err)
    with pytest.raises(SynthesisError, match=f"the model's context of {context} tokens"):
        generate_text(model, tok, prompt_ids(tok, PROMPT), {"method": "fixed_length", "gen_length": context,
                                                            "steps": 4})


# --- the API: text_gen.generate_text ---------------------------------------------------------------

def test_generate_text_streams_pieces_that_join_to_the_answer(model_tok):
    model, tok = model_tok
    options = {"gen_length": 16, "block_length": 4, "steps": 8, "cfg_scale": 3.0}
    pieces: list[str] = []
    result = generate_text(model, tok, prompt_ids(tok, PROMPT), options, generator=text_generator(model, 1),
                           on_block=pieces.append)
    assert "".join(pieces) == result.text and result.text == answer_text(tok, result.ids)
    assert not set(result.ids) & set(text_stop_ids()) and L.MASK_ID not in result.ids
    again = generate_text(model, tok, prompt_ids(tok, PROMPT), text_options(options),
                          generator=text_generator(model, 1))
    assert (again.text, again.ids) == (result.text, result.ids)  # validated options are accepted as they are
    assert text_options({"cache": "none"})["cache"] == "none" and text_options({})["steps"] == 128


# --- the REPL survives a failing turn ----------------------------------------------------------------

@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory. Tried to allocate 2 GiB\nmore detail"),
                                   ValueError("something odd\nsecond line")])
def test_repl_a_failing_turn_is_one_line_and_the_conversation_goes_on(capsys, text_checkpoint, model_tok,
                                                                    monkeypatch, error):
    seen = []
    real = sample

    def flaky(model_, ids, config, **kw):
        seen.append(list(ids))
        if len(seen) == 2:
            raise error
        return real(model_, ids, config, **kw)

    monkeypatch.setattr("llada_tts.sampling.sample", flaky)
    monkeypatch.setattr("sys.stdin", io.StringIO("hello\nthis one fails\nand more\n"))  # then EOF
    code, out, err = run(capsys, "--model", text_checkpoint, "--interactive", "--gen-length", 8, "--block-length", 4,
                         "--steps", 4)
    assert code == 0 and "Traceback" not in err
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert len(errors) == 1 and errors[0].startswith("llada-tts generate: error: ")
    assert str(error).splitlines()[0] in errors[0] and "second line" not in err and "more detail" not in err
    turns = [model_tok[1].decode(ids) for ids in seen]
    assert len(turns) == 3 and "hello" in turns[2] and "and more" in turns[2]  # the conversation is kept
    assert "this one fails" not in turns[2]  # the failed turn is not
    assert out.count(">>> ") == 4
