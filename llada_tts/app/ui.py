"""The page: the gradio Blocks of the Speak and Edit tabs around a loaded pipeline."""
from __future__ import annotations

from typing import TYPE_CHECKING

from llada_tts.app.editing import edit_for_ui
from llada_tts.app.speak import synthesize_for_ui
from llada_tts.app.spectrogram import spectrogram_image
from llada_tts.app.values import NO_VOICE

if TYPE_CHECKING:  # pragma: no cover
    import gradio as gr

EXAMPLES = (
    "Hello! This is a masked diffusion model reading your text aloud.",
    "The quick brown fox jumps over the lazy dog.",
    "Diffusion language models write every word at once, then refine them step by step.",
)



def build_demo(tts, max_chars: int = 1000, examples=EXAMPLES, max_duration: float = 60.0) -> gr.Blocks:
    """The Blocks app around a loaded pipeline (call ``.queue(...)`` and ``.launch(...)`` on it)."""
    import gradio as gr

    from llada_tts.synthesis.defaults import DEFAULT_BLOCK_LENGTH, DEFAULT_TEMPERATURE, MAX_SEED, OPTIONS
    from llada_tts.synthesis.edit import DEFAULT_MARGIN_FRAMES
    from llada_tts.synthesis.reference import MAX_REFERENCE_SECONDS

    # ranges and choices from the one option definition; gradio refuses values outside them too
    limit = OPTIONS["steps"].high_for(max_duration)  # the canvas limit: caps steps and block length
    methods, remaskings, caches = (OPTIONS[k].choices for k in ("method", "remasking", "cache"))
    cfg, temp, thr, block = (OPTIONS[k] for k in ("cfg_scale", "temperature", "threshold", "block_length"))
    voices = list(tts.voices)
    # the checkpoint's own sampler defaults (the demo voice: dual cache, temperature 0.2), so the widgets
    # show and send them
    own = getattr(tts.meta, "sampler", None) or {}
    own_cfg, own_temp = own.get("cfg_scale", 0.0), own.get("temperature", DEFAULT_TEMPERATURE)
    own_cache = own.get("cache") or caches[0]
    voice_info = ("one the model was trained with" if voices
                  else "this checkpoint lists no voices; type one or keep (none)")
    with gr.Blocks(title="llada-tts", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# llada-tts\nSpeech from a masked-diffusion language model over SNAC codec tokens. "
                    "**Speak**: type text, pick a voice, press **Generate**. **Edit**: change words of a recording.")
        with gr.Tabs():
            with gr.Tab("Speak", id="speak", elem_id="speak_tab"):
                with gr.Row():
                    with gr.Column(scale=3):
                        text = gr.Textbox(label=f"Text (up to {max_chars} characters)", lines=4, max_length=max_chars,
                                          placeholder="Type what to say...", elem_id="text")
                        with gr.Row():
                            voice = gr.Dropdown(choices=[NO_VOICE, *voices], value=voices[0] if voices else NO_VOICE,
                                                allow_custom_value=True, label="Voice", elem_id="voice",
                                                info=voice_info)
                            seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, label="Seed",
                                             info="-1 = random (shown below)", elem_id="seed")
                        with gr.Accordion("Reference voice (optional): continue a recording's voice", open=False):
                            gr.Markdown(f"Upload a recording and type exactly what it says; the model continues in "
                                        f"its voice. Up to {MAX_REFERENCE_SECONDS:g} s is used (longer ones are cut "
                                        "at a pause).")
                            with gr.Row():
                                ref_audio = gr.Audio(label="Reference recording", type="numpy",
                                                     sources=["upload", "microphone"], elem_id="ref_audio")
                                ref_text = gr.Textbox(label="What the reference says", lines=3, max_length=max_chars,
                                                      elem_id="ref_text")
                        with gr.Accordion("Advanced", open=False):
                            with gr.Row():
                                method = gr.Dropdown(choices=list(methods), value=methods[1], label="Method")
                                remasking = gr.Dropdown(choices=list(remaskings), value=remaskings[0],
                                                        label="Remasking")
                                cache = gr.Dropdown(choices=list(caches), value=own_cache, label="KV cache",
                                                    elem_id="cache",
                                                    info="prefix / dual: faster, approximate (Fast-dLLM)")
                            with gr.Row():
                                steps = gr.Number(value=0, precision=0, minimum=0, maximum=limit, label="Steps",
                                                  elem_id="steps",
                                                  info=f"denoising steps; 0 = one per 2 canvas tokens; at most {limit}")
                                block_length = gr.Number(value=DEFAULT_BLOCK_LENGTH, precision=0, minimum=block.low,
                                                         maximum=block.high_for(max_duration),
                                                         step=7, label="Block length", elem_id="block_length",
                                                         info=f"tokens; a multiple of 7, at most {limit}")
                            with gr.Row():
                                threshold = gr.Slider(0.0, thr.high, value=0.0, step=0.01, label="Confidence threshold",
                                                      info="0 = off (fixed schedule)")
                                cfg_scale = gr.Slider(cfg.low, cfg.ui_high, value=own_cfg, step=0.1, label="CFG scale",
                                                      info="classifier-free guidance; 0 = off (half the compute)")
                                temperature = gr.Slider(temp.low, temp.ui_high, value=own_temp, step=0.05,
                                                        label="Temperature", info="0 = greedy")
                            with gr.Row():
                                duration = gr.Number(value=0, minimum=0, maximum=max_duration, label="Duration (s)",
                                                     info="0 = estimate from the text")
                                speed = gr.Slider(0.5, 2.0, value=1.0, step=0.05, label="Speed",
                                                  info="speaking rate for the estimate (unused with a duration)")
                        button = gr.Button("Generate", variant="primary", elem_id="generate")
                    with gr.Column(scale=2):
                        audio = gr.Audio(label="Speech", type="numpy", format="wav", interactive=False,
                                         buttons=["download"], elem_id="audio",
                                         waveform_options=gr.WaveformOptions(show_recording_waveform=False))
                        status = gr.Markdown(elem_id="status")
                        spectrogram = gr.Image(label="Spectrogram", type="numpy", format="png", interactive=False,
                                               buttons=["download"], elem_id="spectrogram")
                if examples:
                    gr.Examples(examples=[[e] for e in examples], inputs=[text], label="Example prompts",
                                cache_examples=False)

            with gr.Tab("Edit", id="edit", elem_id="edit_tab"):
                gr.Markdown("Upload a recording, type what it says and what it should say. The changed words "
                            "are re-generated; everything else keeps its codec tokens exactly. The highlighted "
                            "columns of the spectrograms are the edited spans.")
                with gr.Row():
                    with gr.Column(scale=3):
                        edit_audio = gr.Audio(label="Recording to edit", type="numpy",
                                              sources=["upload", "microphone"], elem_id="edit_audio")
                        edit_text = gr.Textbox(label="What it says", lines=2, max_length=max_chars,
                                               placeholder="The cat sat on the mat.", elem_id="edit_text")
                        edit_to = gr.Textbox(label="What it should say", lines=2, max_length=max_chars,
                                             placeholder="The dog sat on the mat.", elem_id="edit_to")
                        edit_spans = gr.Textbox(label="Spans (seconds, optional)", elem_id="edit_spans",
                                                placeholder="1.2:1.55, 2.0:2.0",
                                                info="one START:END per changed group of words, in order (an "
                                                     "insertion may be empty, e.g. 2.0:2.0); empty = Whisper "
                                                     "word timestamps (eval extra), or eSpeak NG's for a "
                                                     "frame-timed voice")
                        with gr.Row():
                            edit_margin = gr.Number(value=DEFAULT_MARGIN_FRAMES, precision=0, minimum=0, maximum=24,
                                                    label="Margin (frames)", elem_id="edit_margin",
                                                    info="re-generated on each side of a span (85 ms each)")
                            edit_voice = gr.Dropdown(choices=[NO_VOICE, *voices],
                                                     value=voices[0] if voices else NO_VOICE,
                                                     allow_custom_value=True, label="Voice", elem_id="edit_voice",
                                                     info=voice_info)
                            edit_seed = gr.Number(value=-1, precision=0, minimum=-1, maximum=MAX_SEED, label="Seed",
                                                  info="-1 = random", elem_id="edit_seed")
                            edit_steps = gr.Number(value=0, precision=0, minimum=0, maximum=limit, label="Steps",
                                                   elem_id="edit_steps", info="per block; 0 = the default")
                        edit_button = gr.Button("Edit", variant="primary", elem_id="edit_button")
                    with gr.Column(scale=2):
                        edit_output = gr.Audio(label="Edited speech", type="numpy", format="wav", interactive=False,
                                               buttons=["download"], elem_id="edit_output",
                                               waveform_options=gr.WaveformOptions(show_recording_waveform=False))
                        edit_status = gr.Markdown(elem_id="edit_status")
                edit_before = gr.Image(label="Before (edited spans highlighted)", type="numpy", format="png",
                                       interactive=False, buttons=["download"], elem_id="edit_before")
                edit_after = gr.Image(label="After (generated spans highlighted)", type="numpy", format="png",
                                      interactive=False, buttons=["download"], elem_id="edit_after")

        def generate(text, voice, seed, ref_audio, ref_text, method, remasking, cache, steps, block_length,
                     threshold, cfg_scale, temperature, duration, speed,
                     progress=gr.Progress(track_tqdm=True)):  # noqa: B008  Gradio's documented idiom (it injects the tracker)
            progress(0, desc="Synthesizing")
            (sr, wave), line = synthesize_for_ui(
                tts, text, voice, seed=seed, duration=duration, speed=speed, max_chars=max_chars,
                max_duration=max_duration, progress=True, ref_audio=ref_audio, ref_text=ref_text, method=method,
                remasking=remasking, cache=cache, steps=steps, block_length=block_length, threshold=threshold,
                cfg_scale=cfg_scale, temperature=temperature)
            return (sr, wave), line, spectrogram_image(wave, sr)

        inputs = [text, voice, seed, ref_audio, ref_text, method, remasking, cache, steps, block_length, threshold,
                  cfg_scale, temperature, duration, speed]
        button.click(generate, inputs=inputs, outputs=[audio, status, spectrogram], api_name="synthesize")

        def edit(audio, text, to, spans, margin, voice, seed, steps):
            _, out, before, after, line = edit_for_ui(tts, audio, text, to, spans, voice, seed=seed, margin=margin,
                                                      max_chars=max_chars, max_duration=max_duration, steps=steps)
            return out, before, after, line

        edit_button.click(edit, inputs=[edit_audio, edit_text, edit_to, edit_spans, edit_margin, edit_voice,
                                        edit_seed, edit_steps],
                          outputs=[edit_output, edit_before, edit_after, edit_status], api_name="edit")
    return demo
