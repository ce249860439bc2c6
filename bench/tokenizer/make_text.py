#!/usr/bin/env python3
"""Writes a deterministic mixed text for tokenizer benchmarks: English prose, source code, Chinese
and Japanese, emoji (with skin tones and joiner sequences), numbers, Cyrillic and Arabic, markdown.

    python3 bench/tokenizer/make_text.py [--mb 2] [--seed 1] OUT.txt

Only the standard library: the same seed gives the same bytes on every machine, so `lmw
bench-tokenizer` and the comparison scripts measure the same text.
"""
import argparse
import random

NOUNS = ("time year people way day man thing woman life child world school state family student group "
         "country problem hand part place case week company system program question work government number "
         "night point home water room mother area money story fact month lot right study book eye job word "
         "business issue side kind head house service friend father power hour game line end member law car "
         "city community name president team minute idea kid body information back parent face others level "
         "office door health person art war history party result change morning reason research girl guy "
         "moment air teacher force education foot boy age policy music market sense nation plan college "
         "interest death experience effect class control care field development role effort rate heart drug "
         "show leader light voice wife police mind price report decision son view relationship town road arm "
         "difference value building action model season society tax director position player record paper "
         "space ground form event official matter center couple site project activity star table need court "
         "oil situation cost industry figure street image phone data picture practice piece land product doctor "
         "wall patient worker news test movie north love support technology step baby computer type attention "
         "film tree source organization hair window evidence population site garden rain ocean river mountain").split()
VERBS = ("be have do say go get make know think take see come want look use find give tell work call try ask "
         "need feel become leave put mean keep let begin seem help talk turn start show hear play run move like "
         "live believe hold bring happen write provide sit stand lose pay meet include continue set learn change "
         "lead understand watch follow stop create speak read allow add spend grow open walk win offer remember "
         "love consider appear buy wait serve die send expect build stay fall cut reach kill remain suggest raise "
         "pass sell require report decide pull explain carry develop hope drive return break receive agree").split()
ADJS = ("good new first last long great little own other old right big high different small large next early "
        "young important few public bad same able free sure clear full special easy strong whole dark real best "
        "hard quiet bright cold warm happy tiny ancient modern curious gentle brave quick slow silent golden").split()
NAMES = "Lily Tom Anna Ben Maya Omar Sofia Kenji Priya Lucas Chloe Mateo Aisha Noah Elena Ivan".split()

CODE = [
    "def {f}({a}, {b}):\n    \"\"\"Return the {n}th value.\"\"\"\n    if {a} > {n}:\n        return {a} * {b} + {n}\n    return [{a} ** 2 for _ in range({n})]\n\n",
    "for (int {a} = 0; {a} < {n}; ++{a}) {{\n    {b}[{a}] = std::max({b}[{a}], {f}({a}) * {n});\n}}\n",
    "const {f} = async ({a}, {b}) => {{\n  const res = await fetch(`/api/v{n}/${{{a}}}`);\n  return res.json().then(({b}) => {b}.items ?? []);\n}};\n",
    "SELECT {a}, COUNT(*) AS n_{b} FROM {f}_table WHERE {a} >= {n} GROUP BY {a} ORDER BY n_{b} DESC;\n",
    "class {F}:\n    def __init__(self, {a}={n}):\n        self.{a} = {a}\n        self._{b} = {{'{a}': {a}, 'size': {n}}}\n\n",
    "#include <vector>\nstatic inline float {f}(const float* {a}, size_t {b}) {{ return {a}[{b} % {n}] * 0.5f; }}\n",
    "    {a}_{b} = np.zeros(({n}, {n}), dtype=np.float32)  # {f} buffer\n",
    "<div class=\"{f}\"><span id=\"{a}-{n}\">{b}</span></div>\n",
    "if err := {f}(ctx, &{a}); err != nil {{\n\treturn fmt.Errorf(\"{b} %d: %w\", {n}, err)\n}}\n",
]
IDENTS = "x y i j k n idx count total value items data buf node key result acc tmp row col".split()

ZH = ["我们今天去公园散步", "这个问题非常有意思", "人工智能正在改变世界", "他在图书馆里看书", "天气预报说明天会下雨",
      "请把文件发送给我", "中国的历史非常悠久", "我喜欢吃苹果和香蕉", "这家餐厅的菜很好吃", "学习编程需要耐心",
      "城市的夜景很美丽", "她每天早上六点起床", "我们应该保护环境", "这本书的作者是谁", "火车站离这里不远",
      "语言模型可以生成文本", "孩子们在操场上玩耍", "会议推迟到下周三", "价格比去年上涨了", "数据表明效果显著"]
JA = ["今日はとても良い天気です", "東京駅で友達に会いました", "日本語の勉強は楽しいです", "この本はとても面白い",
      "明日の会議は十時からです", "猫が窓のそばで寝ている", "新しいプログラムを書きました", "駅前のカフェでコーヒーを飲む",
      "桜の花がきれいに咲いた", "ありがとうございます、また来ます"]
RU = ["Привет, как дела?", "Сегодня хорошая погода.", "Это очень интересная книга.", "Мы пойдём в парк завтра."]
AR = ["مرحبا بالعالم", "كيف حالك اليوم؟", "هذا كتاب جميل جدا", "نحن نحب القراءة"]
EMOJI = ["👍", "👍🏽", "🎉", "😂", "❤️", "🔥", "🚀", "✨", "🤖", "🙏🏿", "👨‍👩‍👧‍👦", "🏳️‍🌈", "👩🏻‍💻", "🇯🇵", "☕", "🌍", "💡", "✅"]


def sentence(r):
    name = r.choice(NAMES)
    words = [r.choice(ADJS), r.choice(NOUNS)]
    s = f"{name} {r.choice(VERBS)}s the {' '.join(words)}"
    for _ in range(r.randint(0, 3)):
        s += f" {r.choice(['and', 'with', 'near', 'because of', 'after', 'like'])} a {r.choice(ADJS)} {r.choice(NOUNS)}"
    if r.random() < 0.3:
        s += f", and said, \"I don't think we've {r.choice(VERBS)}ed it yet\""
    return s + r.choice([".", ".", ".", "!", "?"])


def code(r):
    t = r.choice(CODE)
    a, b = r.sample(IDENTS, 2)
    f = f"{r.choice(VERBS)}_{r.choice(NOUNS)}"
    return t.format(f=f, F=f.title().replace("_", ""), a=a, b=b, n=r.randint(0, 4096))


def numbers(r):
    parts = [f"{r.randint(1990, 2030)}-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}",
             f"{r.uniform(-1000, 1000):.{r.randint(1, 6)}f}", f"{r.randint(0, 10**9):,}",
             f"+1 ({r.randint(200, 999)}) {r.randint(100, 999)}-{r.randint(1000, 9999)}",
             f"{r.randint(1, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)}.{r.randint(0, 255)}",
             f"{r.randint(1, 99)}% of {r.randint(100, 99999)}", f"v{r.randint(0, 9)}.{r.randint(0, 20)}.{r.randint(0, 99)}"]
    return " ".join(r.sample(parts, r.randint(2, 5))) + "\n"


def cjk(r):
    zh = "，".join(r.choice(ZH) for _ in range(r.randint(1, 4))) + r.choice(["。", "！", "？"])
    if r.random() < 0.4:
        zh += "".join(r.choice(JA) for _ in range(r.randint(1, 2))) + "。"
    return zh


def emoji(r):
    return " ".join(r.choice(EMOJI) for _ in range(r.randint(1, 6)))


def paragraph(r):
    kind = r.choices(["prose", "code", "cjk", "mixed", "numbers", "other"], weights=[40, 20, 15, 12, 8, 5])[0]
    if kind == "prose":
        return " ".join(sentence(r) for _ in range(r.randint(2, 6))) + "\n\n"
    if kind == "code":
        return "```\n" + "".join(code(r) for _ in range(r.randint(1, 3))) + "```\n\n"
    if kind == "cjk":
        return "".join(cjk(r) for _ in range(r.randint(1, 4))) + "\n\n"
    if kind == "mixed":
        return f"## {r.choice(NOUNS).title()} {r.randint(1, 99)}\n- {sentence(r)} {emoji(r)}\n- {cjk(r)} {emoji(r)}\n- {numbers(r)}\n"
    if kind == "numbers":
        return numbers(r) + numbers(r) + "\n"
    return f"{r.choice(RU)} {r.choice(AR)} {emoji(r)}   \t{r.choice(RU)}\n\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--mb", type=float, default=2.0, help="size in MB (10^6 bytes)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    r = random.Random(args.seed)
    target = int(args.mb * 1e6)
    parts, size = [], 0
    while size < target:
        p = paragraph(r)
        parts.append(p)
        size += len(p.encode("utf-8"))
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        f.write("".join(parts))


if __name__ == "__main__":
    main()
