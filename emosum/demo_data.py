"""Synthetic Chinese emotional texts with short emotion summaries: the embedded default data.

This is NOT real data. It exists so that `dvc repro` on a fresh clone, with no network, has
something shaped like the real task to train on: diary entries, help-seeking posts and chat
messages, each paired with a summary of who feels what and why.

The task takes reading, not recognising (the first demo mapped each of 36 causes to one fixed
phrase, and its model scored 100% by classifying the text into that closed list, and 0 of 30 on
hand-written texts):

- **Causes are open.** Each is composed from frames and a large vocabulary (people, names, pets,
  objects, foods, places, exams, numbers; the nouns and place names partly from jieba's
  dictionary), so most test causes never occur in training. The summary states the cause as the
  text does, by one rule: the cause clause copied as written, without the time word before it.
- **The feeling is shown many ways**: the 15 labels' own words and their synonyms in many
  constructions (`很X`, `X极了`, `X得不行`, ...) and fixed paraphrases; the summary names the label.
- **Around them, what real posts have**: events that caused nothing (the same frames and
  vocabulary), other people's feelings, negated feelings (`不是生气，是失望`), the feeling before
  the cause, filler, long posts where the cause comes late, and chat turns.
- **A held-out split** (`split: heldout`): causes whose slot words (and verbs) are absent from
  training, and feelings said only through wording families held out of training. A word is held
  out by a hash of the word, so every run and every seed holds out the same words.

Regenerate the committed file (deterministic for a seed):

    python -m emosum.demo_data data/demo/emotions.jsonl.gz
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import os
import random
import re

# ---- feelings ------------------------------------------------------------------------------
# label -> (valence, words: the label and its synonyms, used in constructions; phrases: shown
# without the word). The last entry of each list marked HELD is used only by the held-out split.
HELD = "|"
EMOTIONS: dict[str, tuple[int, list[str], list[str]]] = {
    "焦虑": (-1, ["焦虑", "紧张", "担心", "着急", "不安", "|忐忑", "|发愁"],
             ["心里七上八下的", "整晚都睡不着", "坐立不安", "吃不下饭", "一想到这件事就胸口发紧", "心慌得厉害",
              "|脑子里乱成一团", "|手心一直在冒汗"]),
    "难过": (-1, ["难过", "伤心", "难受", "心痛", "心酸", "|悲伤", "|痛心"],
             ["忍不住哭了好几次", "眼泪一直止不住", "心里空落落的", "心里像压了一块石头", "一整天都提不起精神",
              "|鼻子一酸", "|偷偷哭了一整晚"]),
    "愤怒": (-1, ["愤怒", "生气", "气愤", "火大", "恼火", "|窝火", "|来气"],
             ["气得浑身发抖", "气死我了", "火冒三丈", "一肚子火没处发", "越想越气", "|差点拍了桌子",
              "|肺都要气炸了"]),
    "委屈": (-1, ["委屈", "冤枉", "憋屈", "|不平"],
             ["委屈得想哭", "有苦说不出", "明明不是我的错却没人信我", "眼眶一下就红了", "憋了一肚子委屈",
              "|一肚子苦水没处倒", "|被冤枉的滋味太难受"]),
    "孤独": (-1, ["孤独", "孤单", "寂寞", "|冷清", "|落寞"],
             ["身边没有一个能说话的人", "觉得全世界只剩我一个人", "一个人吃饭一个人发呆", "热闹都是别人的",
              "|连个说话的人都找不到", "|像被整个世界忘了"]),
    "失望": (-1, ["失望", "灰心", "泄气", "心凉", "|心寒", "|沮丧"],
             ["期待全都落空了", "心一下子凉了", "觉得付出都白费了", "再也不想抱什么希望", "|竹篮打水一场空",
              "|满心的盼头全没了"]),
    "害怕": (-1, ["害怕", "恐惧", "怕", "|惊恐", "|发怵"],
             ["吓得一晚上不敢关灯", "心里直发毛", "整个人都吓懵了", "吓死我了", "腿都吓软了",
              "|后背一阵阵发凉", "|一晚上没敢合眼"]),
    "内疚": (-1, ["内疚", "愧疚", "自责", "过意不去", "|惭愧", "|歉疚"],
             ["觉得都是我的错", "一直在责怪自己", "觉得很对不起他们", "后悔当初没有多做一点", "|没脸见他们",
              "|心里一直有愧"]),
    "迷茫": (-1, ["迷茫", "茫然", "困惑", "|彷徨", "|无所适从"],
             ["不知道接下来该往哪里走", "不知道自己到底想要什么", "看不清方向", "每天都在原地打转",
              "不知道该怎么办", "|像在雾里走路", "|找不到人生的方向"]),
    "疲惫": (-1, ["疲惫", "累", "疲倦", "心累", "|乏力", "|精疲力尽"],
             ["身心俱疲", "累得一句话都不想说", "快要撑不下去了", "感觉整个人被掏空了", "累得站着都能睡着",
              "|眼皮都睁不开", "|浑身像散了架"]),
    "自卑": (-1, ["自卑", "没用", "丢人", "|自惭形秽", "|低人一等"],
             ["觉得自己什么都比不上别人", "抬不起头", "觉得自己不配", "越来越看不起自己",
              "|在人前总是缩着", "|觉得自己一无是处"]),
    "开心": (1, ["开心", "高兴", "快乐", "欢喜", "|喜悦", "|美滋滋"],
             ["开心得跳了起来", "嘴角一直是上扬的", "心里乐开了花", "高兴得睡不着", "笑得合不拢嘴",
              "|走路都带风", "|做梦都要笑醒"]),
    "感激": (1, ["感激", "感谢", "感动", "感恩", "|铭记", "|领情"],
             ["不知道该怎么报答", "眼眶都湿了，太感谢了", "真心谢谢他们", "觉得遇到他们太幸运了",
              "|这份情我会一直记着", "|心里热乎乎的"]),
    "欣慰": (1, ["欣慰", "放心", "宽慰", "|安心", "|踏实"],
             ["觉得一切都值得了", "终于松了一口气", "心里暖暖的", "总算没有白费心思", "|悬着的心总算放下了",
              "|这些年的辛苦没白费"]),
    "期待": (1, ["期待", "盼望", "憧憬", "|向往", "|翘首以盼"],
             ["每天都在倒数日子", "已经开始想象那天的样子", "满心期待", "恨不得明天就到",
              "|数着手指头过日子", "|巴不得早点到那一天"]),
}
# how the author says a feeling word W ("X" below); "得" constructions need a verb-like word
WORD_FORMS = ["很X", "好X", "特别X", "真的好X", "X极了", "太X了", "有点X", "心里很X", "感到很X", "觉得很X",
              "X得不行", "非常X", "X得要命", "说不出的X", "真让人X", "让我很X", "我很X", "我真的很X", "挺X的",
              "X到了极点", "|别提多X了", "|说实话挺X的", "|一直都很X", "|X得不得了", "|真是X透了", "|越想越X",
              "|X得说不出话"]
SUBJECTS = ["", "", "", "我", "我", "整个人", "心里"]

# ---- vocabulary for causes -----------------------------------------------------------------
PEOPLE = ["老板", "领导", "同事", "室友", "妈妈", "爸爸", "奶奶", "爷爷", "外婆", "外公", "男朋友", "女朋友",
          "老公", "老婆", "儿子", "女儿", "哥哥", "姐姐", "弟弟", "妹妹", "同学", "同桌", "老师", "班主任",
          "邻居", "房东", "客户", "好朋友", "闺蜜", "表哥", "表妹", "舅舅", "姑姑", "婆婆", "岳父", "师傅",
          "队友", "网友", "学长", "学姐", "医生", "快递员", "陌生人", "前任", "实习生", "组长", "主管",
          "导师", "教练", "司机", "保安", "店员", "合租的人", "大学同学", "发小", "表姐", "小姨", "叔叔",
          "堂弟", "新来的经理", "隔壁的阿姨", "楼下的大爷", "部门经理", "辅导员", "小组长", "对象", "未婚夫",
          "未婚妻", "继母", "亲家", "老乡", "徒弟", "合伙人", "房客", "病友"]
SURNAMES = list("王李张刘陈杨黄赵周吴徐孙马胡朱郭何罗高林郑梁谢宋唐许韩邓冯曹彭曾肖田董潘袁蔡蒋余于杜叶程魏苏吕丁任卢姚沈钟姜崔谭陆范汪廖石金韦贾夏付方邹熊白孟秦邱侯江尹薛闫段雷龙黎史陶贺毛郝顾龚邵万覃武钱戴严欧莫孔向常汤")
GIVEN = list("伟芳娜敏静丽强磊洋艳勇军杰娟涛明超秀霞平刚桂英华玉兰萍红鹏辉玲斌宇浩凯健俊帆帅旭宁琳晶欣颖倩雪慧"
             "婷瑶琪佳怡思雨晨阳博文轩睿泽浩然子涵梓萱梦露岚峰磊鑫楠航彤诗蕾薇菲璐莹嘉悦霖锋琦昊彬")
PETS = ["猫", "狗", "小猫", "小狗", "仓鼠", "兔子", "金鱼", "鹦鹉", "乌龟", "柯基", "橘猫", "泰迪", "八哥",
        "布偶猫", "金毛", "刺猬", "龙猫", "柴犬", "蜥蜴"]
OBJECTS = ["手机", "电脑", "钱包", "自行车", "电动车", "化妆品", "耳机", "相机", "护照", "身份证", "钥匙",
           "雨伞", "书包", "笔记本", "平板", "手表", "项链", "戒指", "围巾", "外套", "裙子", "球鞋", "行李箱",
           "吉他", "钢琴", "画", "论文", "简历", "方案", "报告", "日记", "快递", "包裹", "礼物", "蛋糕",
           "花", "信", "照片", "优盘", "硬盘", "键盘", "鼠标", "显示器", "台灯", "眼镜", "口红", "香水",
           "保温杯", "水杯", "充电宝", "充电器", "游戏机", "模型", "手办", "乐高", "漫画书", "小说", "课本",
           "作业", "试卷", "毕业证", "车钥匙", "门卡", "饭卡", "公交卡", "银行卡", "发票", "合同", "设计稿",
           "视频", "文章", "代码", "毛衣", "帽子", "手套", "被子", "枕头", "沙发", "冰箱", "洗衣机", "空调",
           "微波炉", "电饭煲", "风扇", "衣柜", "书架", "盆栽", "多肉", "鱼缸", "玩具", "积木", "风筝", "滑板",
           "篮球", "羽毛球拍", "跑步机", "瑜伽垫", "茶具", "红酒", "月饼", "粽子", "年货", "车", "房子", "电瓶"]
FOODS = ["火锅", "烧烤", "饺子", "面条", "米粉", "麻辣烫", "炸鸡", "汉堡", "寿司", "小龙虾", "煎饼", "包子",
         "馄饨", "螺蛳粉", "酸菜鱼", "烤鸭", "奶茶", "咖啡", "蛋挞", "冰淇淋", "红烧肉", "糖醋排骨", "凉皮",
         "肉夹馍", "豆浆", "油条", "生煎", "牛肉面", "串串", "披萨"]
PLACES = ["超市", "地铁站", "公司", "学校", "医院", "图书馆", "火车站", "商场", "菜市场", "健身房", "咖啡店",
          "银行", "公园", "机场", "电影院", "食堂", "宿舍", "小区门口", "办公室", "会议室", "教室", "操场",
          "高铁上", "公交车上", "出租车上", "派出所", "邮局", "理发店", "医院门口", "楼道里", "电梯里",
          "停车场", "酒店", "民宿", "景区", "海边", "山上", "老家", "出租屋", "实验室", "考场", "展会",
          "夜市", "步行街", "书店", "网吧", "游泳馆", "车站", "码头", "服务区"]
EXAMS = ["驾照考试", "科目二", "科目三", "英语四级", "英语六级", "期末考试", "雅思", "托福", "教师资格证考试",
         "公务员考试", "考研", "毕业答辩", "钢琴考级", "面试", "笔试", "试用期考核", "年终考核", "资格考试",
         "计算机二级", "普通话考试", "专业课考试", "高考", "中考", "月考", "体育测试", "游泳考试",
         "职称评审", "注册会计师考试", "司法考试", "竞赛初赛", "复试", "演讲比赛", "马拉松", "歌唱比赛",
         "舞蹈比赛", "编程比赛", "作文比赛", "篮球赛", "期中考试", "入职体检"]
BODY = ["甲状腺", "肺上", "胃里", "肝上", "心脏", "血压", "血糖", "腰椎", "颈椎", "眼睛", "牙齿", "膝盖"]
BAD_VERBS = ["弄坏", "弄丢", "偷走", "扔掉", "摔碎", "拿走", "藏起来", "弄脏", "撕坏", "踩坏", "剪坏", "烧坏",
             "压坏", "泡坏", "划花", "砸坏", "卖掉", "送人", "偷偷用掉", "弄湿"]
GOOD_VERBS = ["修好", "找回", "送回来", "洗干净", "收拾好", "整理好", "装好", "寄过来", "还回来", "买回来",
              "做好", "擦亮", "补好", "带回来", "重新做好"]
NUMBERS = {"K": (2, 99), "H": (100, 900), "T": (2, 30)}


def held_out(word: str) -> bool:
    """Whether a vocabulary word belongs to the held-out split only: a hash of the word, about 1 in
    5, the same on every run and seed (Python's hash() is salted per process)."""
    return int(hashlib.md5(word.encode("utf-8")).hexdigest(), 16) % 5 == 0


@functools.lru_cache(maxsize=1)
def _jieba_words() -> dict[str, list[str]]:
    """A broad vocabulary from jieba's dictionary (a dependency already): 2-3 character nouns and
    place names of middling frequency. Real words with characters far beyond the hand lists', so
    the model must copy what it cannot have memorised; sorted, so the pick is deterministic."""
    import jieba

    cjk = re.compile(r"^[\u4e00-\u9fff]{2,3}$")
    out: dict[str, list[str]] = {"n": [], "ns": [], "v": []}
    # no word that says a feeling: a cause must not carry an emotion's wording (`没用` is a verb there)
    feel = {w.lstrip(HELD) for _, words, phrases in EMOTIONS.values() for w in words + phrases}
    feel_text = "|".join(feel)
    path = os.path.join(os.path.dirname(jieba.__file__), "dict.txt")
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) != 3 or parts[2] not in out or not cjk.match(parts[0]) or \
                    not 200 <= int(parts[1]) <= 30000 or (parts[2] == "v" and len(parts[0]) != 2):
                continue
            w = parts[0]
            if w in feel_text or any(f in w for f in feel) or w in ("觉得", "感到", "因为", "所以"):
                continue
            out[parts[2]].append(w)
    return {k: sorted(set(v)) for k, v in out.items()}


def _split_vocab(words: list[str], heldout: bool) -> list[str]:
    return [w for w in words if held_out(w) == heldout]


def _family(items: list[str], heldout: bool) -> list[str]:
    """The training wordings of a feeling, or (held-out split) the ones marked HELD."""
    return [w.lstrip(HELD) for w in items if w.startswith(HELD) == heldout]


class Vocab:
    """The slot words of one side (training or held-out)."""

    def __init__(self, heldout: bool):
        jw = _jieba_words()
        self.heldout = heldout
        self.P = _split_vocab(PEOPLE, heldout)
        self.pet = _split_vocab(PETS, heldout)
        self.O = _split_vocab(OBJECTS, heldout)
        self.On = _split_vocab(jw["n"], heldout)
        self.F = _split_vocab(FOODS, heldout)
        self.L = _split_vocab(PLACES, heldout)
        self.Ln = _split_vocab(jw["ns"], heldout)
        self.Vn = _split_vocab(jw["v"], heldout)
        self.A = _split_vocab(EXAMS, heldout)
        self.B = _split_vocab(BODY, heldout)
        self.bad = _split_vocab(BAD_VERBS, heldout)
        self.good = _split_vocab(GOOD_VERBS, heldout)
        # a name is held out when its given character is: the held-out split's names are new
        self.given = [c for c in GIVEN if held_out(c) == heldout]

    def fill(self, rng: random.Random, slot: str) -> str:
        if slot == "P":
            return self.name(rng) if rng.random() < 0.2 else rng.choice(self.P)
        if slot == "N":
            return self.name(rng)
        if slot == "O":  # half concrete objects, half any noun from the dictionary
            return rng.choice(self.O if rng.random() < 0.5 else self.On)
        if slot == "L":
            return rng.choice(self.L if rng.random() < 0.6 else self.Ln)
        if slot in NUMBERS:
            lo, hi = NUMBERS[slot]
            return str(rng.randint(lo, hi))
        if slot == "n":  # any noun: a person, an object or one from the dictionary
            return rng.choice(self.P if rng.random() < 0.3 else self.On)
        return rng.choice({"pet": self.pet, "F": self.F, "A": self.A, "B": self.B, "bad": self.bad,
                           "good": self.good, "v": self.Vn}[slot])

    def name(self, rng: random.Random) -> str:
        r = rng.random()
        if r < 0.35:
            return "小" + rng.choice(self.given)
        if r < 0.5:
            return "阿" + rng.choice(self.given)
        if r < 0.6:
            return "老" + rng.choice(SURNAMES)
        return rng.choice(SURNAMES) + rng.choice(self.given) + (rng.choice(self.given) if rng.random() < 0.5 else "")


# cause frames: {slot} is filled from the Vocab; -1 negative, 1 positive
NEGATIVE = [
    "被{P}当众批评了", "被{P}冤枉拿了{O}", "{P}偷用我的{O}还不承认", "{P}把我的{O}{bad}了", "我的{O}在{L}被偷了",
    "在{L}把{O}弄丢了", "{A}没有通过", "{A}只考了{K}分", "和{P}大吵了一架", "{P}在背后说我坏话",
    "{P}把我的秘密告诉了别人", "被{P}放了鸽子", "{P}住院了", "{P}生病好几天了还不见好", "养了{T}年的{pet}走丢了",
    "我的{pet}生病去世了", "房租又涨了{H}块", "被公司扣了{H}块工资", "每天加班到凌晨{T}点", "连续加了{T}天班",
    "投了{K}份简历都没有回音", "在{L}被人插队还被骂了一顿", "网购的{O}是假货，商家还不给退", "借给{P}的{H}块钱一直没还",
    "搬到{L}以后一个朋友都没有", "{P}忘了我的生日", "辛苦做的{O}被{P}说成抄袭", "{P}抢了我的功劳",
    "在{L}迷了路，手机也没电了", "{P}提出要和我分手", "半夜听到{L}有奇怪的声音", "体检查出{B}有问题",
    "不小心把{P}的{O}{bad}了", "答应{P}的事没有做到", "{A}又失败了", "{A}差了{K}分", "{P}说我什么都做不好",
    "毕业{T}年了还不知道自己想做什么", "身边的{P}都买房了，只有我还在原地", "一个人在{L}过年", "{P}总是拿我和别人比",
    "被{P}骗走了{H}块钱", "在{L}被{P}当着大家的面嘲笑", "{P}把我拉黑了", "{P}突然不理我了", "被{L}的公司裁员了",
    "{P}把我的{F}吃光了还不道歉", "{P}在群里点名说我拖后腿", "在{L}等了{T}个小时也没等到{P}", "{P}要搬去{L}了",
    "准备了{T}个月的{A}被取消了", "{P}一直催我结婚", "{P}把{O}落在了{L}", "新买的{O}用了{T}天就坏了",
]
POSITIVE = [
    "{A}终于通过了", "{A}考了{K}分", "{P}送了我一个{O}", "在{L}买到了心心念念的{O}", "抽奖抽中了一台{O}",
    "{P}的手术很成功", "{P}考上了{L}的大学", "被{L}的公司录取了", "{P}帮我找回了丢失的{O}", "{P}在我生病时一直照顾我",
    "下个月要去{L}旅游", "周末要和{P}去{L}玩", "{P}第一次叫我妈妈", "项目拿到了{K}万的奖金", "工资涨了{H}块",
    "{P}终于戒烟了", "{P}病好出院了", "新房子终于装修好了", "{P}主动跟我道歉了", "收到了{P}寄来的{O}",
    "{A}拿了第一名", "{P}在{L}给了我一个惊喜", "写的{O}被{P}夸了", "{P}把我的{O}{good}了", "{P}要从{L}回来看我了",
    "在{L}遇到了多年没见的{P}", "{P}答应了我的求婚", "自己做的{F}被{P}全吃光了", "{P}的{A}考了第一",
    "攒了{T}年的钱终于买了{O}", "养的{pet}生了{T}只小宝宝", "{P}记得我爱吃{F}", "{P}在{L}找到了工作",
    "下周就能见到{T}年没见的{P}了", "{A}的成绩出来了，比预想的高{K}分", "被{P}推荐去{L}进修",
]
# free clauses: dictionary nouns and verbs in a few grammatical shapes, mostly nonsense on purpose.
# With the frames alone a model learnt them as a closed list of ~90 classes and filled their slots
# with words it remembered (`项目拿到了4万的奖金` for 91万); a clause no frame predicts can only be copied.
FREE = [
    "{n}{v}了{n}", "{n}把{n}{v}了", "被{n}{v}了", "{n}的{n}{v}了", "{n}一直{v}我的{n}", "在{L}{v}了{n}",
    "{n}突然{v}了", "我{v}的{n}被{n}{v}了", "{n}不肯{v}{n}", "{n}又{v}了{K}次", "{n}和{n}一起{v}了",
    "{n}终于{v}了", "{v}{n}的时候{v}了{n}", "{n}在{L}{v}{n}", "我的{n}{v}了{T}天", "{n}说要{v}我的{n}",
]
# events that caused nothing, from the same vocabulary (the model must find the one that did)
NEUTRAL = [
    "去{L}买了{O}", "和{P}在{L}吃了{F}", "{P}说周末要去{L}", "在{L}排了{T}分钟的队", "路过{L}看到有人在卖{O}",
    "中午吃了{F}", "{P}问我要不要一起去{L}", "把{O}拿去{L}修了", "顺路去{L}取了快递", "{P}在群里发了{O}的照片",
    "晚上和{P}视频聊了{T}分钟", "在{L}等了{T}分钟的车", "{P}刚从{L}回来", "下班顺路买了{F}",
    "{P}最近在准备{A}", "早上坐车去了{L}", "给{P}回了个消息", "整理了一下{O}",
]
FILLERS = [
    "又下雨了，地铁里挤得喘不过气", "楼下的装修声从早响到晚", "最近天气忽冷忽热", "周末本来想去爬山，结果睡到了中午",
    "手机屏幕又摔裂了一角", "这几天一直在追一部老剧", "小区门口新开了一家面包店", "公交车晚点了二十分钟",
    "办公室的空调总是开得很冷", "楼上邻居家的狗叫了一晚上", "家里的绿萝长得特别好", "这个月的电费比上个月多了不少",
    "穿错了衣服，冻得直哆嗦", "最近睡前总爱刷短视频", "路边的银杏叶全黄了", "闹钟响了三次才起来",
    "单位食堂的菜又涨价了", "朋友圈里大家都在晒旅游照片",
]
WHEN = ["今天", "昨天", "前几天", "上周", "这两天", "早上", "晚上", "刚才", "那天", "下午", "最近", "上个月"]
NEEDS = ["想知道该怎么办", "希望得到建议", "想找人倾诉", "不知道该不该坚持", "想听听过来人的经验", "希望有人能理解自己"]
OPENERS = {
    "diary": ["{date}，晴。", "{date}，阴。", "{date}，小雨。", "今天是{date}。", "", ""],
    "help": ["求助，", "想问问大家，", "匿名发个帖，", "不知道发在这里合不合适，", "憋了很久，想说说。", ""],
}
DATES = [f"{m}月{d}日" for m in range(1, 13) for d in (1, 5, 9, 14, 18, 23, 27)]
SLOT = re.compile(r"\{(\w+)\}")
FREE_SHARE = 0.5  # of causes (and of the events that caused nothing) composed freely


def _compose(rng: random.Random, frame: str, vocab: Vocab) -> str:
    return SLOT.sub(lambda m: vocab.fill(rng, m.group(1)), frame)


def feeling(rng: random.Random, emotion: str, heldout: bool, word_share: float = 0.55) -> tuple[str, str]:
    """How the author shows `emotion`, and which wording family that is.

    Training: a training word in a training construction, or a training phrase ("seen"). The
    held-out split: a quarter seen; 45% a training word in a construction held out of training
    ("new_form"); 15% a word held out of training ("new_word"); 15% a held-out phrase ("new_phrase").
    A word never seen cannot be read by a model that never met it; the family is recorded so the
    scores can be split by it."""
    _, words, phrases = EMOTIONS[emotion]
    forms_seen, forms_new = _family(WORD_FORMS, False), _family(WORD_FORMS, True)
    r = rng.random() if heldout else 0.0
    if r < 0.25:
        kind, use_word = "seen", rng.random() < word_share
        w_list, f_list, p_list = _family(words, False), forms_seen, _family(phrases, False)
    elif r < 0.70:
        kind, use_word, w_list, f_list, p_list = "new_form", True, _family(words, False), forms_new, []
    elif r < 0.85:
        kind, use_word, w_list, f_list, p_list = "new_word", True, _family(words, True), forms_seen, []
    else:
        kind, use_word, w_list, f_list, p_list = "new_phrase", False, [], [], _family(phrases, True)
    if use_word:
        form = rng.choice(f_list)
        text = form.replace("X", rng.choice(w_list))
        return (text if form.startswith(("我", "让", "真让")) else rng.choice(["", "", "我"]) + text), kind
    return rng.choice(SUBJECTS) + rng.choice(p_list), kind


def _word(rng: random.Random, emotion: str) -> str:
    """A training word of `emotion` (the distractors: someone else's feeling, a negated one)."""
    return rng.choice(_family(EMOTIONS[emotion][1], False))


def _other(rng: random.Random, emotion: str) -> str:
    """Another emotion (any valence) for the distractors."""
    return rng.choice(sorted(e for e in EMOTIONS if e != emotion))


def core(rng: random.Random, cause: str, emotion: str, heldout: bool, vocab: Vocab) -> tuple[str, str]:
    """The cause and the author's feeling, in one of the orders and guises real posts use; and the
    feeling's wording family."""
    feel, kind = feeling(rng, emotion, heldout)
    r = rng.random()
    if r < 0.12:  # a negated feeling first: 不是生气，是失望
        neg = _word(rng, _other(rng, emotion))
        feel = rng.choice([f"不是{neg}，{feel}", f"说不上{neg}，更多的是{feel}", f"倒也不{neg}，就是{feel}"])
    elif r < 0.2:  # someone else's feeling beside the author's
        other = _compose(rng, "{P}", vocab)
        feel = rng.choice([f"{other}倒是挺{_word(rng, _other(rng, emotion))}的，我却{feel}",
                           f"{other}说他很{_word(rng, _other(rng, emotion))}，可我{feel}"])
    order = rng.random()
    when = rng.choice(WHEN) if rng.random() < 0.5 else ""
    if order < 0.45:
        out = f"{when}{cause}，{feel}"
    elif order < 0.62:
        out = f"{when}{cause}。{feel}"
    elif order < 0.74:
        out = f"因为{when}{cause}，{feel}"
    elif order < 0.86:  # the feeling before the cause
        out = f"{feel}，因为{when}{cause}"
    else:
        out = rng.choice([f"{feel}。事情是这样的：{when}{cause}", f"{feel}，就因为{when}{cause}",
                          f"{feel}。{when}{cause}，到现在都缓不过来"])
    return out, kind


NEG_SET = {e for e, (v, _, _) in EMOTIONS.items() if v < 0}


def _others(rng: random.Random, vocab: Vocab, emotion: str) -> list[str]:
    # Lengths are heavy-tailed like real posts: many one-liners, a long tail past 512 tokens.
    r = rng.random()
    n = 0 if r < 0.25 else rng.randint(1, 3) if r < 0.65 else rng.randint(4, 10) if r < 0.85 \
        else rng.randint(11, 35) if r < 0.95 else rng.randint(36, 120)
    out = []
    for _ in range(n):
        k = rng.random()
        if k < 0.45:  # the same free shapes as causes, so only its place says which clause caused the feeling
            frame = rng.choice(FREE if rng.random() < FREE_SHARE else NEUTRAL)
            out.append(rng.choice(WHEN) + _compose(rng, frame, vocab))
        elif k < 0.55:  # someone else's feeling about something else
            out.append(_compose(rng, "{P}", vocab) + rng.choice(["最近", "这几天", "今天"]) + "很" +
                       _word(rng, _other(rng, emotion)))
        else:
            out.append(rng.choice(["", ""] + WHEN) + rng.choice(FILLERS))
    return out


SKEW_EMOTION, SKEW_FRAMES = "焦虑", NEGATIVE[:3]  # the narrow slice a skewed pool is crowded with


def make_pair(rng: random.Random, vocab: Vocab, narrow: bool = False,
              recast: dict | None = None) -> tuple[dict, bool]:
    """One pair; `narrow`: from the slice a skewed pool over-represents (one feeling, three cause
    frames, diaries): like a scraped pool where one topic dominates. `recast`: an earlier pair whose
    cause this one tells again with another feeling (of the same valence where its frame has one),
    in a text of its own. Returns the pair and whether its cause came from a frame of one valence
    (`recast` needs it: a frame's cause keeps its valence when told again)."""
    if recast is not None:
        cause = recast["cause"]
        valence = EMOTIONS[recast["emotion"]][0] if recast.get("framed") else rng.choice([-1, 1])
        emotion = rng.choice(sorted(e for e, (v, _, _) in EMOTIONS.items() if v == valence and e != recast["emotion"]))
        framed = recast.get("framed", False)
    else:
        emotion = SKEW_EMOTION if narrow else rng.choice(sorted(EMOTIONS))
        valence = EMOTIONS[emotion][0]
        free = not narrow and rng.random() < FREE_SHARE
        frames = SKEW_FRAMES if narrow else FREE if free else NEGATIVE if valence < 0 else POSITIVE
        cause, framed = _compose(rng, rng.choice(frames), vocab), not free
    kind = "diary" if narrow else rng.choice(["diary", "help", "chat"])
    others = _others(rng, vocab, emotion)
    cut = rng.randint(0, len(others))
    told, wording = core(rng, cause, emotion, vocab.heldout, vocab)
    sentences = others[:cut] + [told] + others[cut:]
    if kind == "diary":
        text = rng.choice(OPENERS["diary"]).format(date=rng.choice(DATES)) + "。".join(sentences) + "。"
        summary = f"作者因{cause}感到{emotion}。"
    elif kind == "help":
        need = rng.choice(NEEDS)
        text = rng.choice(OPENERS["help"]) + "。".join(sentences) + f"。{need}。"
        summary = f"楼主因{cause}感到{emotion}，{need}。"
    else:
        name, friend = vocab.name(rng), vocab.name(rng)
        while friend == name:
            friend = vocab.name(rng)
        turns = [f"{friend}：在吗？最近怎么样", f"{name}：别提了"]
        turns += [f"{friend}：嗯嗯，然后呢" if s in others and rng.random() < 0.2 else f"{name}：{s}"
                  for s in sentences]
        turns.append(f"{friend}：" + rng.choice(["抱抱你", "有什么需要随时找我", "太好了吧！", "慢慢来"]))
        text = "\n".join(turns)
        summary = f"{name}因{cause}感到{emotion}。"
    # the facts `evaluate.fact_columns` checks: the cause as the summary states it, the label
    # wording: the feeling's wording family (held-out split: seen, new_form, new_word, new_phrase)
    row = {"type": kind, "emotion": emotion, "cause": cause, "wording": wording, "text": text, "summary": summary}
    return row, framed


def retell(rng: random.Random, row: dict) -> dict:
    """The same story told again, as scraped pools hold it (reposts, edits, the same post in two
    forums): the same cause, feeling and summary; one sentence other than the one telling them
    dropped or swapped for another (or, where there is none, one added), and sometimes the
    punctuation of the end changed."""
    sep = "\n" if row["type"] == "chat" else "。"
    parts = row["text"].split(sep)
    keep = [i for i, p in enumerate(parts) if p and row["cause"] not in p]
    if keep:
        i = rng.choice(keep)
        if row["type"] != "chat" and rng.random() < 0.5:
            parts[i] = rng.choice(["", ""] + WHEN) + rng.choice(FILLERS)
        else:
            del parts[i]
    else:  # nothing but the story itself: the repost adds a line
        filler = rng.choice(FILLERS)
        parts.insert(len(parts) - 1 if parts[-1] == "" else len(parts), filler if row["type"] != "chat"
                     else parts[0].split("：")[0] + "：" + filler)
    text = sep.join(parts)
    if row["type"] != "chat" and rng.random() < 0.3:
        text = text.rstrip("。") + "！"
    return {**row, "text": text}


def generate(n: int = 13_000, seed: int = 0, heldout: int = 0, skew: float = 0.0,
             duplicates: float = 0.0, recast: float = 0.0) -> list[dict]:
    """n pairs from the training vocabulary (split "train": the pipeline carves validation and test
    out of them), then `heldout` pairs from the held-out vocabulary and wordings (split "heldout").
    `skew`: the share of the n drawn from one narrow slice (SKEW_EMOTION, SKEW_FRAMES, diaries), a
    skewed pool for comparing subsample strategies; the held-out pairs stay as they are.
    `duplicates`: the share of the n that retell an earlier training pair (`retell`: near-duplicates,
    not exact copies; `duplicate_of` names the pair retold), a redundant pool for the same purpose.
    `recast`: the share of the n that tell an earlier training pair's cause again with another feeling,
    in a new text (`recast_of` names it): the cause no longer tells the feeling, so a model that
    memorises a pair's feeling by its cause is wrong on its twin and has to read the feeling."""
    rows = []
    for side, count in (("train", n), ("heldout", heldout)):
        tag = "".join(f"-{k}{v}" for k, v in (("skew", skew), ("dup", duplicates), ("recast", recast)) if v)
        rng = random.Random(f"{seed}-{side}" if not tag or side == "heldout" else f"{seed}-{side}{tag}")
        vocab = Vocab(side == "heldout")
        made: list[dict] = []
        for i in range(count):
            if side == "train" and duplicates and made and rng.random() < duplicates:
                src = rng.choice(made)
                rows.append({"id": f"demo-{side}-{i:05d}", "split": side, **retell(rng, src["row"]),
                             "duplicate_of": src["id"]})
                continue
            if side == "train" and recast and made and rng.random() < recast:
                src = rng.choice(made)
                pair, _ = make_pair(rng, vocab, recast={**src["row"], "framed": src["framed"]})
                rows.append({"id": f"demo-{side}-{i:05d}", "split": side, **pair, "recast_of": src["id"]})
                continue
            pair, framed = make_pair(rng, vocab, narrow=bool(skew) and side == "train" and rng.random() < skew)
            made.append({"id": f"demo-{side}-{i:05d}", "row": pair, "framed": framed})
            rows.append({"id": f"demo-{side}-{i:05d}", "split": side, **pair})
    return rows


def lexicon() -> dict[str, list[str]]:
    """label -> its training wordings (words and phrases; none of the held-out split's): what
    `train.label_swap` swaps (emosum/augment.py LabelSwap), written beside the data as feelings.json."""
    return {label: _family(words, False) + _family(phrases, False) for label, (_, words, phrases) in EMOTIONS.items()}


def write_lexicon(path: str) -> None:
    import json

    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(lexicon(), f, ensure_ascii=False, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def main() -> None:
    import gzip
    import json

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", help="a .jsonl or .jsonl.gz path")
    ap.add_argument("-n", type=int, default=13_000)
    ap.add_argument("--heldout", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skew", type=float, default=0.0,
                    help="share of the training pairs from one narrow slice (a skewed pool; default 0)")
    ap.add_argument("--duplicates", type=float, default=0.0,
                    help="share of the training pairs that retell an earlier one (near-duplicates; default 0)")
    ap.add_argument("--recast", type=float, default=0.0,
                    help="share of the training pairs that tell an earlier one's cause with another feeling (default 0)")
    args = ap.parse_args()
    if not 0 <= args.skew < 1:
        ap.error(f"--skew {args.skew}: a share from 0 to below 1")
    if not 0 <= args.duplicates < 1:
        ap.error(f"--duplicates {args.duplicates}: a share from 0 to below 1")
    if not 0 <= args.recast < 1:
        ap.error(f"--recast {args.recast}: a share from 0 to below 1")
    tmp = args.output + ".tmp"
    rows = generate(args.n, args.seed, args.heldout, args.skew, args.duplicates, args.recast)
    # mtime=0 keeps the gzip bytes identical run to run (gzip stores a timestamp otherwise).
    with open(tmp, "wb") as raw:
        out = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if args.output.endswith(".gz") else raw
        for row in rows:
            out.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
        if out is not raw:
            out.close()
    os.replace(tmp, args.output)
    write_lexicon(os.path.join(os.path.dirname(args.output) or ".", "feelings.json"))
    print(f"wrote {len(rows)} pairs ({args.n} train, {args.heldout} held-out) to {args.output} "
          f"({os.path.getsize(args.output):,} bytes)")


if __name__ == "__main__":
    main()
