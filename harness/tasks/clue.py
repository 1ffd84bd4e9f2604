"""CLUE classification tasks: AFQMC, TNEWS, IFLYTEK, CMNLI, OCNLI, CLUEWSC2020, CSL and the
CLUE diagnostic NLI set.

Label sets, file names and submission names follow the CLUE README and its 2021-09-04
submission rules: tasks whose test set was replaced in CLUE 1.1 name their files
`<task>11_predict.json` (test.json) and `<task>10_predict.json` (test1.0.json).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.tasks.base import (
    CLUE,
    ClassificationTask,
    Field,
    FieldProblem,
    Label,
    Split,
    pair,
)

CLASSIFICATION_1_0 = "clue1.0-classification"

NLI_LABELS = (
    Label("entailment", "entailment", "蕴含"),
    Label("neutral", "neutral", "中立"),
    Label("contradiction", "contradiction", "矛盾"),
)

PAIR_FIELDS = (Field("sentence1"), Field("sentence2"))

TNEWS_LABELS = (
    Label("100", "news_story", "故事"),
    Label("101", "news_culture", "文化"),
    Label("102", "news_entertainment", "娱乐"),
    Label("103", "news_sports", "体育"),
    Label("104", "news_finance", "财经"),
    Label("106", "news_house", "房产"),
    Label("107", "news_car", "汽车"),
    Label("108", "news_edu", "教育"),
    Label("109", "news_tech", "科技"),
    Label("110", "news_military", "军事"),
    Label("112", "news_travel", "旅游"),
    Label("113", "news_world", "国际"),
    Label("114", "news_stock", "股票"),
    Label("115", "news_agriculture", "农业"),
    Label("116", "news_game", "电竞"),
)

IFLYTEK_NAMES = (
    "打车 地图导航 免费WIFI 租车 同城服务 快递物流 婚庆 家政 公共交通 政务 社区服务 薅羊毛 魔幻 仙侠 "
    "卡牌 飞行空战 射击游戏 休闲益智 动作类 体育竞技 棋牌中心 经营养成 策略 MOBA 辅助工具 约会社交 "
    "即时通讯 工作社交 论坛圈子 婚恋社交 情侣社交 社交工具 生活社交 微博博客 新闻 漫画 小说 技术 教辅 "
    "问答交流 搞笑 杂志 百科 影视娱乐 求职 兼职 视频 短视频 音乐 直播 电台 K歌 成人 中小学 职考 公务员 "
    "英语 视频教育 高等教育 成人教育 艺术 语言(非英语) 旅游资讯 综合预定 民航 铁路 酒店 行程管理 "
    "民宿短租 出国 工具 亲子儿童 母婴 驾校 违章 汽车咨询 汽车交易 日常养车 行车辅助 租房 买房 装修家居 "
    "电子产品 问诊挂号 养生保健 医疗服务 减肥瘦身 美妆美业 菜谱 餐饮店 体育咨讯 运动健身 支付 保险 股票 "
    "借贷 理财 彩票 记账 银行 美颜 影像剪辑 摄影修图 相机 绘画 二手 电商 团购 外卖 电影票务 社区超市 "
    "购物咨询 笔记 办公 日程管理 女性 经营 收款 其他"
).split()
IFLYTEK_LABELS = tuple(Label(str(index), name, name) for index, name in enumerate(IFLYTEK_NAMES))

BINARY_PARAPHRASE = (Label("0", "different", "不同"), Label("1", "same", "相同"))
WSC_LABELS = (Label("true", "true", "是"), Label("false", "false", "否"))
CSL_LABELS = (Label("0", "fake_keyword", "否"), Label("1", "genuine_keywords", "是"))

PARAPHRASE_PROMPT = "句子一：{sentence1}\n句子二：{sentence2}\n问：这两句话的意思相同吗？\n答："
NLI_PROMPT = "前提：{sentence1}\n假设：{sentence2}\n问：前提和假设是什么关系？\n答："
TNEWS_PROMPT = "新闻标题：{sentence}\n问：这条新闻属于哪个类别？\n答："
IFLYTEK_PROMPT = "应用描述：{sentence}\n问：这款应用属于哪个类别？\n答："
WSC_PROMPT = "{text}\n问：句中的“{span2_text}”指的是“{span1_text}”吗？\n答："
CSL_PROMPT = "摘要：{abst}\n关键词：{keywords}\n问：这些关键词都是这篇摘要的真实关键词吗？\n答："


def _checked_span(text: str, target: Mapping[str, Any], name: str) -> tuple[int, str]:
    index = target.get(f"{name}_index")
    span = target.get(f"{name}_text")
    if not isinstance(index, int) or isinstance(index, bool):
        raise FieldProblem(f"target.{name}_index", f"expected an integer, found {index!r}")
    if not isinstance(span, str):
        raise FieldProblem(f"target.{name}_text", f"expected a string, found {span!r}")
    if text[index : index + len(span)] != span:
        raise FieldProblem(
            f"target.{name}_index",
            f"text[{index}:{index + len(span)}] is {text[index : index + len(span)]!r}, "
            f"not the span {span!r}",
        )
    return index, span


WSC_VARIABLES = ("text", "span1_text", "span2_text", "marked_text")
CSL_VARIABLES = ("abst", "keywords", "keyword_list")


def render_wsc(data: Mapping[str, Any]) -> dict[str, str]:
    """Check both spans against the text and mark them the way the CLUE baselines do.

    The candidate (span1) is wrapped as `_…_` and the pronoun (span2) as `[…]`; the
    marked text feeds encoders, the plain text and span strings feed prompts.
    """
    text = data["text"]
    target = data["target"]
    start1, span1 = _checked_span(text, target, "span1")
    start2, span2 = _checked_span(text, target, "span2")

    marks = sorted(
        [(start1, start1 + len(span1), "_", "_"), (start2, start2 + len(span2), "[", "]")],
        reverse=True,
    )
    marked = text
    for start, end, left, right in marks:
        marked = marked[:start] + left + marked[start:end] + right + marked[end:]
    return {"text": text, "span1_text": span1, "span2_text": span2, "marked_text": marked}


def render_csl(data: Mapping[str, Any]) -> dict[str, str]:
    keywords = data["keyword"]
    for position, keyword in enumerate(keywords):
        if not isinstance(keyword, str):
            raise FieldProblem(f"keyword[{position}]", f"expected a string, found {keyword!r}")
    return {
        "abst": data["abst"],
        "keywords": "，".join(keywords),
        "keyword_list": " ".join(keywords),
    }


def wsc_classifier_text(variables: Mapping[str, str]) -> tuple[str, None]:
    return variables["marked_text"], None


def csl_classifier_text(variables: Mapping[str, str]) -> tuple[str, str]:
    return variables["keyword_list"], variables["abst"]


def _standard_splits(task: str, *, train: str = "train.json") -> tuple[Split, ...]:
    return (
        Split("train", train),
        Split("dev", "dev.json"),
        Split("test", "test.json", labelled=False, submission=f"{task}_predict.json"),
    )


AFQMC = ClassificationTask(
    name="afqmc",
    benchmark=CLUE,
    directory="afqmc",
    description="Ant Financial question matching: do two questions mean the same?",
    fields=PAIR_FIELDS,
    labels=BINARY_PARAPHRASE,
    splits=_standard_splits("afqmc"),
    prompt=PARAPHRASE_PROMPT,
    classifier_text=pair("sentence1", "sentence2"),
    boards=(CLASSIFICATION_1_0,),
)

TNEWS = ClassificationTask(
    name="tnews",
    benchmark=CLUE,
    directory="tnews",
    description="Toutiao news title classification, 15 classes (ids 100-116 without 105, 111)",
    fields=(Field("sentence"), Field("keywords", required=False)),
    labels=TNEWS_LABELS,
    splits=(
        Split("train", "train.json"),
        Split("dev", "dev.json"),
        Split("test", "test.json", labelled=False, submission="tnews11_predict.json"),
        Split("test1.0", "test1.0.json", labelled=False, submission="tnews10_predict.json"),
    ),
    prompt=TNEWS_PROMPT,
    classifier_text=pair("sentence"),
    boards=(CLASSIFICATION_1_0,),
)

IFLYTEK = ClassificationTask(
    name="iflytek",
    benchmark=CLUE,
    directory="iflytek",
    description="iFLYTEK app description classification, 119 classes",
    fields=(Field("sentence"),),
    labels=IFLYTEK_LABELS,
    splits=_standard_splits("iflytek"),
    prompt=IFLYTEK_PROMPT,
    classifier_text=pair("sentence"),
    boards=(CLASSIFICATION_1_0,),
)

CMNLI = ClassificationTask(
    name="cmnli",
    benchmark=CLUE,
    directory="cmnli",
    description="Chinese MNLI/XNLI natural language inference, 3 classes",
    fields=PAIR_FIELDS,
    labels=NLI_LABELS,
    splits=_standard_splits("cmnli"),
    prompt=NLI_PROMPT,
    classifier_text=pair("sentence1", "sentence2"),
    no_gold_marker="-",
    boards=(CLASSIFICATION_1_0,),
)

OCNLI = ClassificationTask(
    name="ocnli",
    benchmark=CLUE,
    directory="ocnli",
    description="Original Chinese NLI (ocnli_50k), 3 classes",
    fields=PAIR_FIELDS,
    labels=NLI_LABELS,
    splits=(
        Split("train", "train.50k.json"),
        Split("train.30k", "train.30k.json"),
        Split("train.10k", "train.10k.json"),
        Split("train.3k", "train.3k.json"),
        Split("dev", "dev.json"),
        Split("test", "test.json", labelled=False, submission="ocnli_50k_predict.json"),
    ),
    prompt=NLI_PROMPT,
    classifier_text=pair("sentence1", "sentence2"),
    no_gold_marker="-",
)

CLUEWSC2020 = ClassificationTask(
    name="cluewsc2020",
    benchmark=CLUE,
    directory="cluewsc2020",
    description="Winograd-style pronoun resolution: does the pronoun refer to the candidate?",
    fields=(Field("text"), Field("target", dict)),
    labels=WSC_LABELS,
    splits=(
        Split("train", "train.json"),
        Split("dev", "dev.json"),
        Split("test", "test.json", labelled=False, submission="cluewsc11_predict.json"),
        Split("test1.0", "test1.0.json", labelled=False, submission="cluewsc10_predict.json"),
    ),
    prompt=WSC_PROMPT,
    classifier_text=wsc_classifier_text,
    render=render_wsc,
    render_variables=WSC_VARIABLES,
    boards=(CLASSIFICATION_1_0,),
)

CSL = ClassificationTask(
    name="csl",
    benchmark=CLUE,
    directory="csl",
    description="Chinese scientific literature: are all keywords genuine for the abstract?",
    fields=(Field("abst"), Field("keyword", list)),
    labels=CSL_LABELS,
    splits=_standard_splits("csl"),
    prompt=CSL_PROMPT,
    classifier_text=csl_classifier_text,
    render=render_csl,
    render_variables=CSL_VARIABLES,
    boards=(CLASSIFICATION_1_0,),
)

DIAGNOSTICS_VARIABLES = ("sentence1", "sentence2")


def render_diagnostics(data: Mapping[str, Any]) -> dict[str, str]:
    """Name premise and hypothesis as the NLI prompt does, so OCNLI's prompt applies."""
    return {"sentence1": data["premise"], "sentence2": data["hypothesis"]}


# The diagnostic pairs have no training data, so an NLI model predicts them: one trained on
# OCNLI or CMNLI, or an LLM with the NLI prompt. Split "test" writes the submission in
# OCNLI's line format. Split "test_public" reads the same file and scores its labels.
# NOTE: the label field comes from the HF loader's description, not from a real file, and
# the name diagnostics_predict.json is not in the official submission rules. Only PyCLUE's
# diagnostics notebook names the file, and it uses this name.
DIAGNOSTICS = ClassificationTask(
    name="clue-diagnostics",
    benchmark=CLUE,
    directory="clue_diagnostics",
    description="CLUE diagnostic NLI pairs covering 9 linguistic phenomena, 3 classes",
    fields=(Field("premise"), Field("hypothesis")),
    labels=NLI_LABELS,
    splits=(
        Split("test_public", "diagnostics_test.json"),
        Split(
            "test",
            "diagnostics_test.json",
            labelled=False,
            submission="diagnostics_predict.json",
        ),
    ),
    prompt=NLI_PROMPT,
    classifier_text=pair("sentence1", "sentence2"),
    render=render_diagnostics,
    render_variables=DIAGNOSTICS_VARIABLES,
    fewshot_split="test_public",
    id_field="index",
    no_gold_marker="-",
)

TASKS = (AFQMC, TNEWS, IFLYTEK, CMNLI, OCNLI, CLUEWSC2020, CSL, DIAGNOSTICS)
