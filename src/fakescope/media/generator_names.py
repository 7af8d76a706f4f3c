"""Which generative tool a text names: the key and value conventions tools write into the files they make.

:mod:`fakescope.media.provenance` runs :func:`generator_of` on every text it reads from a file.
"""

from __future__ import annotations

import re


# Text keys that by themselves say which tool wrote the file: (key, generator, where the convention is documented).
GENERATOR_KEYS: tuple[tuple[str, str, str], ...] = (
    ("invokeai_metadata", "InvokeAI", "invoke-ai/InvokeAI: PNG text chunks of its image files service (3.x and later)"),
    ("invokeai_graph", "InvokeAI", "invoke-ai/InvokeAI: PNG text chunks of its image files service (3.x and later)"),
    ("invokeai_workflow", "InvokeAI", "invoke-ai/InvokeAI: PNG text chunks of its image files service (3.x and later)"),
    ("sd-metadata", "InvokeAI", "invoke-ai/InvokeAI 2.x: PNG 'sd-metadata' (JSON)"),
    ("Dream", "InvokeAI", "lstein/stable-diffusion dream.py, InvokeAI's predecessor: PNG 'Dream' (its dream> line)"),
    ("fooocus_scheme", "Fooocus", "lllyasviel/Fooocus modules/meta_parser.py: PNG 'fooocus_scheme' by 'parameters'"),
)

# Values that name a generative tool: (regular expression, generator, where the convention is documented).
# Searched (case-insensitive; ``(?-i:...)`` where the case matters) in the first SCAN_CHARS characters of every
# value read; the first match names it.
# The names are the tools' own, as they write them into EXIF Software (tag 0x0131, Exif 2.3, CIPA DC-008) or the
# PNG spec's predefined Software/Source/Description/Comment keywords; words that are also common nouns or names
# (Firefly, Runway, Sora, Imagen, Leonardo) are only taken with the company or a version beside them.
GENERATOR_PATTERNS: tuple[tuple[str, str, str], ...] = (
    (r"\bSteps: \d+,[^\n]{0,200}?\b(?:Sampler|CFG scale|Seed): ", "Stable Diffusion web UI",
     "AUTOMATIC1111/stable-diffusion-webui infotext (modules/processing.py), saved by modules/images.py as PNG "
     "'parameters' or JPEG/WebP EXIF UserComment, read back by its PNG Info tab; Forge and SD.Next keep it"),
    (r'"class_type"\s*:', "ComfyUI",
     "comfyanonymous/ComfyUI SaveImage node: PNG 'prompt' (the API graph, nodes with class_type) and 'workflow'; "
     "SaveAnimatedWEBP writes them as 'prompt:{...}'/'workflow:{...}' into EXIF Model/Make"),
    (r'"(?:last_node_id|lastNodeId)"\s*:|^[^{]*\{(?=[\s\S]*"nodes"\s*:\s*\[)(?=[\s\S]*"links"\s*:)', "ComfyUI",
     "comfyanonymous/ComfyUI SaveImage node: PNG 'workflow' (the editor's LiteGraph graph: last_node_id, nodes, "
     "links)"),
    (r'"sui_image_params"\s*:', "SwarmUI", "mcmonkeyprojects/SwarmUI: its image metadata JSON (sui_image_params)"),
    (r"\bJob ID: [0-9a-f]{8}-[0-9a-f]{4}-", "Midjourney",
     "Midjourney's PNG Description: the prompt, its parameters and 'Job ID: <uuid>'"),
    (r"trainedAlgorithmicMedia\b", "IPTC trainedAlgorithmicMedia",
     "IPTC NewsCodes Digital Source Type vocabulary, cv.iptc.org/newscodes/digitalsourcetype/ "
     "(trainedAlgorithmicMedia, compositeWithTrainedAlgorithmicMedia)"),
    (r'(?s)^\s*\{(?=.*"(?:steps|num_inference_steps|sampling_iterations)"\s*:)'
     r'(?=.*"(?:sampler|sampler_name|seed|scale|cfg_scale|cfg|guidance_scale|uc)"\s*:)', "generation parameters JSON",
     "a JSON object with a step count and a sampler, seed or guidance scale: NovelAI's PNG Comment, Fooocus' "
     "'parameters', Cremage's 'generation_data'"),
    (r"\bNovelAI\b", "NovelAI", "NovelAI's PNG chunks: Software 'NovelAI', Source = model ('NovelAI Diffusion ...')"),
    (r"\bInvokeAI\b", "InvokeAI", "invoke-ai/InvokeAI: its name in Software/metadata"),
    (r"\bComfyUI\b", "ComfyUI", "comfyanonymous/ComfyUI: its name"),
    (r"\bAUTOMATIC1111\b|\bstable-diffusion-webui\b|\bSD\.Next\b", "Stable Diffusion web UI",
     "AUTOMATIC1111/stable-diffusion-webui, vladmandic/sdnext: their names"),
    (r"\bFooocus\b", "Fooocus", "lllyasviel/Fooocus: its name"),
    (r"\bstable[ _-]?diffusion\b|\bSDXL\b|\bstability[ .]?ai\b|\bDreamStudio\b", "Stable Diffusion",
     "Stability AI's model and product names (NovelAI's Source names its SD-based models 'Stable Diffusion ...')"),
    (r"\bmidjourney\b", "Midjourney", "Midjourney: its name"),
    (r"\bDALL[-\u00b7\u2010 ]E\b|\bDALL-?E[ -]?[23]\b|\bgpt-image-\d\b", "OpenAI DALL-E / GPT image",
     "OpenAI's model names (DALL-E, DALL\u00b7E 3, gpt-image-1)"),
    (r"\bAdobe Firefly\b", "Adobe Firefly", "Adobe Firefly: its name"),
    (r"\b(?:Google|Vertex AI) Imagen\b|\bimagen-[2-4]\.\d", "Google Imagen", "Google's Imagen model names"),
    (r"\bgemini-[\d.]+-(?:flash|pro)-image\b|\bNano Banana\b", "Google Gemini image", "Google's Gemini image models"),
    (r"\bFLUX\.[12]\b|\bflux[-_ ](?:dev|schnell|pro|kontext)\b|\bBlack Forest Labs\b", "FLUX",
     "Black Forest Labs' model names (FLUX.1 [dev]/[schnell]/[pro])"),
    (r"\bLeonardo[. ]?Ai\b", "Leonardo.Ai", "Leonardo.Ai: its name"),
    (r"\bIdeogram(?:\.ai| AI)\b|(?-i:\bIdeogram\b)", "Ideogram", "Ideogram: its name"),
    (r"\bRunway ?ML\b|\bRunway Gen-?\d\b", "Runway", "Runway (RunwayML, Gen-2/3/4): its names"),
    (r"\bOpenAI Sora\b|(?-i:\bSora [12]\b)", "Sora", "OpenAI Sora: its name"),
    (r"\bKling ?AI\b|(?-i:\bKling [12](?:\.\d)?\b)", "Kling", "Kuaishou's Kling: its name"),
    (r"\bPika ?Labs\b|\bpika\.art\b", "Pika", "Pika Labs: its name"),
    (r"\bGoogle Veo\b|\bveo-[23]\.\d", "Google Veo", "Google's Veo model names"),
    (r"\bKandinsky[ -]?\d", "Kandinsky", "ai-forever Kandinsky model names"),
    (r"\bCraiyon\b|\bNightCafe\b|\bPlayground ?AI\b|\bBing Image Creator\b|\bImage Creator from Microsoft\b",
     "image generation service", "Craiyon, NightCafe, Playground AI, Bing Image Creator: their names"),
    (r"\bDeepFaceLab\b|\bDeepFaceLive\b", "DeepFaceLab", "iperov/DeepFaceLab, DeepFaceLive: their names"),
    (r"\bfaceswap\b|\bFaceFusion\b", "face swap tool", "deepfakes/faceswap, facefusion/facefusion: their names"),
)
KEY_GENERATORS = {k: name for k, name, _ in GENERATOR_KEYS}
_GENERATOR_RES = [(re.compile(p, re.I), name) for p, name, _ in GENERATOR_PATTERNS]
SCAN_CHARS = 1 << 16  # what names a tool comes early (a ComfyUI workflow can run to megabytes)


def generator_of(key: str, value: str) -> str | None:
    """The generative tool that ``value`` (under the raw ``key``) names, or ``None``."""
    if key in KEY_GENERATORS and value.strip():
        return KEY_GENERATORS[key]
    head = value[:SCAN_CHARS]
    return next((name for rx, name in _GENERATOR_RES if rx.search(head)), None)
