"""Synthetic Chinese emotional texts with short emotion summaries: the embedded default data.

This is NOT real data. It exists so that `dvc repro` on a fresh clone, with no network, has
something shaped like the real task to train on: diary entries, help-seeking posts and chat
messages, each paired with a summary of who feels what and why. The summary follows from the
text (the cause and the emotion are stated or paraphrased in it, among unrelated filler), so a
model has to learn to find them; the lead-k floor (copying the first characters) stays low.

Regenerate the committed file (deterministic for a seed):

    python -m emosum.demo_data data/demo/emotions.jsonl.gz
"""
from __future__ import annotations

import argparse
import random

# emotion -> (valence, ways the text shows it). Some name the emotion, most paraphrase it.
EMOTIONS = {
    "焦虑": (-1, ["心里一直七上八下", "整晚睡不着，脑子里全是这件事", "总觉得心慌，做什么都静不下来",
                 "焦虑得吃不下饭", "一想到这件事就胸口发紧", "坐立不安，反复刷手机"]),
    "难过": (-1, ["忍不住哭了好几次", "心里空落落的", "眼泪一直止不住", "整个人都很低落，难过得不想说话",
                 "心里像压了一块石头", "一整天都提不起精神"]),
    "愤怒": (-1, ["气得浑身发抖", "越想越生气", "真的火冒三丈", "忍无可忍，差点当场吵起来",
                 "一肚子火没处发", "愤怒到手都在抖"]),
    "委屈": (-1, ["委屈得想哭", "明明不是我的错却没人相信我", "憋了一肚子委屈", "有苦说不出",
                 "觉得自己被冤枉了", "眼眶一下就红了"]),
    "孤独": (-1, ["觉得全世界只剩我一个人", "身边没有一个可以说话的人", "一个人吃饭一个人发呆",
                 "孤独感一阵阵涌上来", "热闹都是别人的", "手机里连一个能打的电话都没有"]),
    "失望": (-1, ["彻底失望了", "期待了那么久，结果一场空", "心一下子凉了", "再也不想抱什么希望",
                 "对自己很失望", "觉得付出都白费了"]),
    "害怕": (-1, ["吓得一晚上没敢关灯", "越想越害怕", "心里发毛", "一听到手机响就发抖",
                 "害怕事情会变得更糟", "整个人都吓懵了"]),
    "内疚": (-1, ["心里特别过意不去", "一直在责怪自己", "觉得都是我的错", "内疚得睡不着",
                 "不敢面对他们", "后悔当初没有多做一点"]),
    "迷茫": (-1, ["不知道接下来该往哪里走", "对未来一片迷茫", "每天都像在原地打转",
                 "不知道自己到底想要什么", "看不清方向", "感觉人生没有目标"]),
    "疲惫": (-1, ["身心俱疲", "累到连话都不想说", "每天醒来都觉得很累", "感觉自己被掏空了",
                 "已经撑不下去了", "疲惫得只想躺着"]),
    "自卑": (-1, ["觉得自己什么都比不上别人", "越来越看不起自己", "不敢在人前说话",
                 "总觉得自己不配", "自卑得抬不起头", "觉得自己很没用"]),
    "开心": (1, ["开心得跳了起来", "一整天嘴角都是上扬的", "高兴得睡不着", "心里乐开了花",
                "忍不住跟每个人分享", "好久没有这么开心了"]),
    "感激": (1, ["心里特别感动", "真的很感谢他们", "不知道该怎么报答", "感激得说不出话",
                "眼眶都湿了，太感谢了", "觉得自己很幸运遇到了他们"]),
    "欣慰": (1, ["心里很欣慰", "觉得一切都值得了", "终于松了一口气", "看到这一幕很欣慰",
                "总算没有白费心思", "心里暖暖的"]),
    "期待": (1, ["每天都在倒数日子", "特别期待那一天", "心里充满了期待", "已经开始想象那时的样子",
                "兴奋得睡不着", "满心期待"]),
}

# (valence, how the text tells it, how the summary says it)
CAUSES = [
    (-1, "这次考研又没考上，分数线差了三分", "考研失利"),
    (-1, "公司突然宣布裁员，我也在名单上", "被公司裁员"),
    (-1, "和谈了五年的男朋友分手了", "与男友分手"),
    (-1, "和女朋友因为彩礼的事闹翻了", "与女友因彩礼闹翻"),
    (-1, "爸妈最近天天吵架，还说要离婚", "父母闹离婚"),
    (-1, "养了十年的猫昨天走了", "爱猫去世"),
    (-1, "体检查出来甲状腺有结节，要做进一步检查", "体检查出结节"),
    (-1, "房东突然通知下个月要收房，让我尽快搬走", "被房东要求搬走"),
    (-1, "项目上线出了大事故，领导在会上点名批评了我", "被领导点名批评"),
    (-1, "被最好的朋友在背后说坏话", "被好友背后议论"),
    (-1, "期末考试挂了两门，可能要延期毕业", "考试挂科可能延毕"),
    (-1, "投了五十多份简历，一个面试都没有", "求职屡屡碰壁"),
    (-1, "孩子在学校被同学欺负，回家一直哭", "孩子在学校被欺负"),
    (-1, "奶奶住院了，医生说情况不太好", "奶奶病重住院"),
    (-1, "借给朋友的两万块钱一直要不回来", "借出的钱要不回来"),
    (-1, "每天加班到凌晨，周末也要随时待命", "长期加班"),
    (-1, "搬到新城市半年了，一个朋友都没交到", "在新城市没有朋友"),
    (-1, "同事抢了我的功劳，还在老板面前邀功", "被同事抢功"),
    (-1, "婆婆总是插手我们带孩子的事", "婆婆干涉育儿"),
    (-1, "股票亏了一大半积蓄，不敢告诉家里", "炒股亏损积蓄"),
    (-1, "半夜总有人敲我家的门", "半夜有人敲门"),
    (-1, "忘了妈妈的生日，她一句话都没说", "忘记母亲生日"),
    (-1, "毕业两年了还不知道自己适合做什么", "毕业后找不到方向"),
    (-1, "身边的同学都结婚买房了，只有我还一事无成", "与同龄人比较落后"),
    (1, "考了三年的教师编制终于上岸了", "考上教师编制"),
    (1, "女儿第一次开口叫了妈妈", "女儿第一次叫妈妈"),
    (1, "辛苦准备的项目拿到了年度大奖", "项目获奖"),
    (1, "生病住院的时候同事们轮流来照顾我", "生病时同事照顾"),
    (1, "爸爸的手术很成功，医生说恢复得很好", "父亲手术成功"),
    (1, "下个月就要和相恋多年的她结婚了", "即将结婚"),
    (1, "陌生人帮我找回了丢失的钱包", "陌生人帮忙找回钱包"),
    (1, "学生们偷偷给我准备了教师节惊喜", "学生准备惊喜"),
    (1, "终于攒够首付，买下了自己的小房子", "买下自己的房子"),
    (1, "收到了梦想学校的录取通知书", "被梦想学校录取"),
    (1, "下周要去看盼了三年的演唱会", "要去看盼望已久的演唱会"),
    (1, "儿子这次考试进步了二十名", "儿子成绩进步"),
]

NEEDS = ["想知道该怎么办", "希望得到建议", "想找人倾诉", "不知道该不该坚持", "想听听过来人的经验",
         "希望有人能理解自己"]
NAMES = ["小雨", "阿杰", "小林", "婷婷", "老王", "小陈", "晓峰", "佳佳", "大伟", "小美", "阿强", "思思"]

FILLERS = [
    "又下雨了，地铁里挤得喘不过气", "中午在公司楼下随便吃了碗面", "楼下的装修声从早响到晚",
    "回家路上买了一杯奶茶", "最近天气忽冷忽热", "周末本来想去爬山，结果睡到了中午",
    "手机屏幕又摔裂了一角", "这几天一直在追一部老剧", "小区门口新开了一家面包店",
    "同屋的室友养了两只仓鼠", "公交车晚点了二十分钟", "顺路去超市买了些水果",
    "办公室的空调总是开得很冷", "快递又被放错了地方", "晚饭做了番茄炒蛋，味道还行",
    "最近在学着做瑜伽", "楼上邻居家的狗叫了一晚上", "家里的绿萝长得特别好",
    "下班路上看到一只流浪猫", "朋友圈里大家都在晒旅游照片", "这个月的电费比上个月多了不少",
    "周五公司组织了团建，去吃了火锅", "穿错了衣服，冻得直哆嗦", "地铁站换了新的指示牌",
    "妈妈打电话问我吃饭了没有", "最近睡前总爱刷短视频", "路边的银杏叶全黄了",
    "新买的耳机音质还不错", "闹钟响了三次才起来", "单位食堂的菜又涨价了",
]
WHEN = ["", "", "", "今天", "昨天", "前几天", "上周", "这两天", "早上", "晚上", "刚才", "那天"]
OPENERS = {
    "diary": ["{date}，晴。", "{date}，阴。", "{date}，小雨。", "今天是{date}。", ""],
    "help": ["求助，", "想问问大家，", "匿名发个帖，", "不知道发在这里合不合适，", "憋了很久，想说说。"],
}
DATES = [f"{m}月{d}日" for m in range(1, 13) for d in (1, 5, 9, 14, 18, 23, 27)]


def _fillers(rng: random.Random) -> list[str]:
    # Lengths are heavy-tailed like real posts: many one-liners, a long tail past 512 tokens. A
    # quarter have no filler, 82% say cause and feeling within the first 128 characters, 97% within
    # 512, 5% run past 660 characters (the first version had a median of 107 characters and 72%
    # within 128: a model from scratch then learnt the template, not the content).
    r = rng.random()
    n = 0 if r < 0.25 else rng.randint(1, 4) if r < 0.65 else rng.randint(5, 12) if r < 0.85 \
        else rng.randint(13, 40) if r < 0.95 else rng.randint(41, 160)
    return [rng.choice(WHEN) + rng.choice(FILLERS) for _ in range(n)]


def _body(rng: random.Random, cause: str, feel: str, fillers: list[str]) -> str:
    core = rng.choice([f"{cause}，{feel}", f"{cause}。{feel}", f"因为{cause}，{feel}"])
    cut = rng.randint(0, len(fillers))
    return "。".join(fillers[:cut] + [core] + fillers[cut:]) + "。"


def make_pair(rng: random.Random) -> dict:
    emotion = rng.choice(sorted(EMOTIONS))
    valence, feelings = EMOTIONS[emotion]
    _, cause_text, cause_short = rng.choice([c for c in CAUSES if c[0] == valence])
    feel = rng.choice(feelings)
    kind = rng.choice(["diary", "help", "chat"])
    fillers = _fillers(rng)
    if kind == "diary":
        text = rng.choice(OPENERS["diary"]).format(date=rng.choice(DATES)) + \
            _body(rng, cause_text, feel, fillers)
        summary = f"作者因{cause_short}感到{emotion}。"
    elif kind == "help":
        need = rng.choice(NEEDS)
        text = rng.choice(OPENERS["help"]) + _body(rng, cause_text, feel, fillers) + f"{need}。"
        summary = f"楼主因{cause_short}感到{emotion}，{need}。"
    else:
        name, friend = rng.sample(NAMES, 2)
        body = _body(rng, cause_text, feel, fillers).rstrip("。").split("。")
        turns = [f"{friend}：在吗？最近怎么样", f"{name}：别提了"]
        # the friend's interjections replace filler only: the cause and the feeling are always said
        turns += [f"{friend}：嗯嗯，然后呢" if s in fillers and rng.random() < 0.2 else f"{name}：{s}"
                  for s in body]
        turns.append(f"{friend}：" + rng.choice(["抱抱你", "有什么需要随时找我", "太好了吧！", "慢慢来"]))
        text = "\n".join(turns)
        summary = f"{name}因{cause_short}感到{emotion}。"
    # emotion and cause as the summary words them: the facts `evaluate.fact_columns` checks
    return {"type": kind, "emotion": emotion, "cause": cause_short, "text": text, "summary": summary}


def generate(n: int = 13_000, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [{"id": f"demo-{i:05d}", **make_pair(rng)} for i in range(n)]


def main() -> None:
    import gzip
    import json
    import os

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", help="a .jsonl or .jsonl.gz path")
    ap.add_argument("-n", type=int, default=13_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tmp = args.output + ".tmp"
    # mtime=0 keeps the gzip bytes identical run to run (gzip stores a timestamp otherwise).
    with open(tmp, "wb") as raw:
        out = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if args.output.endswith(".gz") else raw
        for row in generate(args.n, args.seed):
            out.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        if out is not raw:
            out.close()
    os.replace(tmp, args.output)
    print(f"wrote {args.n} pairs to {args.output} ({os.path.getsize(args.output):,} bytes)")


if __name__ == "__main__":
    main()
