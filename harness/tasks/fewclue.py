"""FewCLUE classification tasks, read from `<root>/fewclue/<task>/`.

Each task has five few-shot folds (`train_0..4`, `dev_0..4`), their de-duplicated unions
(`train_few_all`, `dev_few_all`), the labelled public test (`test_public`) that papers
report, and the unlabelled `test` whose predictions are submitted. Submission names add an
`f` where CLUE has a task of the same name (`tnewsf_predict.json`), as FewCLUE's own
baselines write them.
"""

from __future__ import annotations

from harness.tasks.base import FEWCLUE, ClassificationTask, Field, Label, Split, pair
from harness.tasks.clue import (
    BINARY_PARAPHRASE,
    CSL_LABELS,
    CSL_PROMPT,
    CSL_VARIABLES,
    IFLYTEK_LABELS,
    IFLYTEK_PROMPT,
    NLI_LABELS,
    NLI_PROMPT,
    PAIR_FIELDS,
    PARAPHRASE_PROMPT,
    TNEWS_LABELS,
    TNEWS_PROMPT,
    WSC_LABELS,
    WSC_PROMPT,
    WSC_VARIABLES,
    csl_classifier_text,
    render_csl,
    render_wsc,
    wsc_classifier_text,
)

CSLDCP_NAMES = (
    "材料科学与工程 作物学 口腔医学 药学 教育学 水利工程 理论经济学 食品科学与工程 畜牧学/兽医学 体育学 "
    "核科学与技术 力学 园艺学 水产 法学 地质学/地质资源与地质工程 石油与天然气工程 农林经济管理 "
    "信息与通信工程 图书馆、情报与档案管理 政治学 电气工程 海洋科学 民族学 航空宇航科学与技术 "
    "化学/化学工程与技术 哲学 公共卫生与预防医学 艺术学 农业工程 船舶与海洋工程 计算机科学与技术 冶金工程 "
    "交通运输工程 动力工程及工程热物理 纺织科学与工程 建筑学 环境科学与工程 公共管理 数学 物理学 "
    "林学/林业工程 心理学 历史学 工商管理 应用经济学 中医学/中药学 天文学 机械工程 土木工程 光学工程 地理学 "
    "农业资源利用 生物学/生物科学与工程 兵器科学与技术 矿业工程 大气科学 基础医学/临床医学 电子科学与技术 "
    "测绘科学与技术 控制科学与工程 军事学 中国语言文学 新闻传播学 社会学 地球物理学 植物保护"
).split()
CSLDCP_LABELS = tuple(Label(name, name, name) for name in CSLDCP_NAMES)

EPRSTMT_LABELS = (Label("Negative", "negative", "负面"), Label("Positive", "positive", "正面"))


def _fewclue_splits(submission: str) -> tuple[Split, ...]:
    folds = [Split(f"train_{fold}", f"train_{fold}.json") for fold in range(5)]
    folds += [Split(f"dev_{fold}", f"dev_{fold}.json") for fold in range(5)]
    return (
        *folds,
        Split("train_few_all", "train_few_all.json"),
        Split("dev_few_all", "dev_few_all.json"),
        Split("test_public", "test_public.json"),
        Split("test", "test.json", labelled=False, submission=submission),
    )


def _task(name: str, description: str, submission: str, **declaration) -> ClassificationTask:
    return ClassificationTask(
        name=f"fewclue-{name}",
        benchmark=FEWCLUE,
        directory=f"fewclue/{name}",
        description=description,
        splits=_fewclue_splits(submission),
        fewshot_split="train_few_all",
        **declaration,
    )


TASKS = (
    _task(
        "bustm",
        "Xiaobu assistant utterance matching: do two utterances mean the same?",
        "bustm_predict.json",
        fields=PAIR_FIELDS,
        labels=BINARY_PARAPHRASE,
        prompt=PARAPHRASE_PROMPT,
        classifier_text=pair("sentence1", "sentence2"),
    ),
    _task(
        "eprstmt",
        "E-commerce review sentiment, positive or negative",
        "eprstmt_predict.json",
        fields=(Field("sentence"),),
        labels=EPRSTMT_LABELS,
        prompt="评论：{sentence}\n问：这条评论的情感是正面还是负面？\n答：",
        classifier_text=pair("sentence"),
    ),
    _task(
        "csldcp",
        "Chinese scientific literature discipline classification, 67 classes",
        "csldcp_predict.json",
        fields=(Field("content"),),
        labels=CSLDCP_LABELS,
        prompt="论文摘要：{content}\n问：这篇论文属于哪个学科？\n答：",
        classifier_text=pair("content"),
    ),
    _task(
        "tnews",
        "Toutiao news title classification, 15 classes",
        "tnewsf_predict.json",
        fields=(Field("sentence"), Field("keywords", required=False)),
        labels=TNEWS_LABELS,
        prompt=TNEWS_PROMPT,
        classifier_text=pair("sentence"),
    ),
    _task(
        "iflytek",
        "iFLYTEK app description classification, 119 classes",
        "iflytekf_predict.json",
        fields=(Field("sentence"),),
        labels=IFLYTEK_LABELS,
        prompt=IFLYTEK_PROMPT,
        classifier_text=pair("sentence"),
    ),
    _task(
        "ocnli",
        "Original Chinese NLI, 3 classes",
        "ocnlif_predict.json",
        fields=PAIR_FIELDS,
        labels=NLI_LABELS,
        prompt=NLI_PROMPT,
        classifier_text=pair("sentence1", "sentence2"),
        no_gold_marker="-",
    ),
    _task(
        "cluewsc",
        "Winograd-style pronoun resolution",
        "cluewscf_predict.json",
        fields=(Field("text"), Field("target", dict)),
        labels=WSC_LABELS,
        prompt=WSC_PROMPT,
        classifier_text=wsc_classifier_text,
        render=render_wsc,
        render_variables=WSC_VARIABLES,
    ),
    _task(
        "csl",
        "Keyword authenticity for scientific abstracts",
        "cslf_predict.json",
        fields=(Field("abst"), Field("keyword", list)),
        labels=CSL_LABELS,
        prompt=CSL_PROMPT,
        classifier_text=csl_classifier_text,
        render=render_csl,
        render_variables=CSL_VARIABLES,
    ),
)
