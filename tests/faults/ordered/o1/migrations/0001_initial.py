from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Applied",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("event_id", models.CharField(db_index=True, max_length=64)),
                ("key", models.CharField(max_length=64)),
                ("n", models.IntegerField()),
                ("pid", models.IntegerField()),
            ],
        ),
    ]
